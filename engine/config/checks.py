"""Validation, stage 2 of 3: what types and bounds cannot say, read from the config alone: settings
that depend on each other (K inside the grid, Λ's strides, what only DiffusionNFT or MixGRPO reads,
prompts given twice). No file, model or Hub is looked at here (stage 3: engine/config/resources.py).

The pipeline (engine.config.validate): parse_config (stage 1: types and bounds, declared per field
in engine/config/__init__.py and fields.py), then cross_field_problems, then resource_problems; the
jobs API adds the estimate against the machine (engine/config/estimate.py) before queueing.
"""
from __future__ import annotations

from engine.config.limits import excerpt


def cross_field_problems(cfg, branching: tuple[str, ...]) -> list[str]:
    """Every problem of that kind, as lines; `branching`: the methods that branch (engine.config.BRANCHING)."""
    errors: list[str] = []

    def need(ok: bool, message: str):
        if not ok:
            errors.append(message)

    a, s = cfg.algorithm, cfg.sampling
    need(a.kl_beta == 0 or cfg.lora.enabled,
         "algorithm.kl_beta: the KL reference is the adapter-disabled model, so it needs lora.enabled")
    if a.name in branching:
        _check_g2rpo(a, s.steps, need)
    need(a.name != "diffusionnft" or not a.shared_noise,
         "algorithm.shared_noise: DiffusionNFT samples by ODE, so members sharing one noise would be copies")
    need(a.nft_old_decay == 0 or a.name == "diffusionnft", "algorithm.nft_old_decay: only DiffusionNFT keeps an old policy")
    need(a.nft_noise == "fresh" or a.name == "diffusionnft", "algorithm.nft_noise: only DiffusionNFT noises its samples again")
    need(a.nft_noise == "fresh" or not a.nft_group_noise,
         "algorithm.nft_noise: 'rollout' gives each member its own initial noise, so it cannot share a group's noise")
    need(a.name != "mixgrpo" or 1 <= a.window_size <= s.steps - 1,
         f"algorithm.window_size: must be in 1..{s.steps - 1}, got {a.window_size}")
    need(cfg.prompts is None or cfg.prompts_file is None, "prompts_file: give prompts or prompts_file, not both")
    need(cfg.eval_prompts is None or cfg.eval_prompts_file is None,
         "eval_prompts_file: give eval_prompts or eval_prompts_file, not both")
    return errors


def _check_g2rpo(a, steps: int, need) -> None:
    need(len(a.branch_steps) > 0, "algorithm.branch_steps: K must not be empty")
    need(len(set(a.branch_steps)) == len(a.branch_steps), f"algorithm.branch_steps: repeated steps in {excerpt(a.branch_steps)}")
    bad = [k for k in a.branch_steps if k >= steps]
    need(not bad, f"algorithm.branch_steps: {excerpt(bad)} beyond the grid; steps are 0..{steps - 1} with sampling.steps={steps}")
    if a.merge_steps:
        need(a.name == "egrpo" or all(m == 1 for m in a.merge_steps),
             "algorithm.merge_steps: G²RPO branches over single grid steps; merged steps are E-GRPO (algorithm.name: egrpo)")
        need(len(a.merge_steps) == len(a.branch_steps), f"algorithm.merge_steps: one span per branch step, got "
             f"{len(a.merge_steps)} for {len(a.branch_steps)} branch steps")
        past = [(k, m) for k, m in zip(a.branch_steps, a.merge_steps) if k + m > steps]
        need(not past, f"algorithm.merge_steps: (k, span) = {excerpt(past)} would step past s = 0 (grid steps 0..{steps - 1})")
    need(len(a.granularities) > 0, "algorithm.granularities: Lambda must not be empty")
    need(len(set(a.granularities)) == len(a.granularities), f"algorithm.granularities: repeated values in {excerpt(a.granularities)}")
    coarse = [g for g in a.granularities if g > steps]
    need(not coarse, f"algorithm.granularities: strides beyond the {steps} steps: {excerpt(coarse)}")
    if a.completion == "authors":
        from engine.method.schedule import completion_schedule

        lands = {k: k + m - 1 for k, m in a.spans().items()} if len(a.merge_steps) in (0, len(a.branch_steps)) else {}
        lost = [(k, g) for k, j in lands.items() for g in a.granularities
                if j < steps - 2 and j + 2 not in completion_schedule(j, g, steps, "authors")]
        need(not lost, f"algorithm.completion: with 'authors', (k, lambda) = {excerpt(lost)} would skip the fine step "
             f"k+1 -> k+2 that every granularity shares; use 'append_zero' or smaller k or lambda")
