"""The paper's math, written once: the SDE/ODE step and its log-density (sampling), the granular
completion schedules (schedule), the clipped objective (objective), the rollouts every algorithm
builds its groups from (rollout), the optimizer step (update) and the frozen old policy (old_policy).

May import: torch, engine.models (the velocity interface). Never the trainer, the config's file
checks, app/ or jobs/.
"""
