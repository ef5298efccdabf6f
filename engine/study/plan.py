"""What the study runs: the methods, the seeds, the budget of model evaluations, the evaluation set.

A plan is plain data (JSON-serialisable): the runner, the evaluator and the report read it, and each
run folder keeps its part of it so a later invocation can tell whether finished work still matches.
"""
from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[2] / "configs"  # the presets, one per algorithm


@dataclass(frozen=True)
class Method:
    key: str  # folder name
    label: str  # table row
    preset: str  # configs/<preset>.yaml
    overrides: tuple[str, ...] = ()


METHODS = (
    Method("g2rpo-L1", "G²RPO, Λ = {1}", "g2rpo", ("algorithm.granularities=[1]",)),
    Method("g2rpo-L12", "G²RPO, Λ = {1,2}", "g2rpo", ("algorithm.granularities=[1,2]",)),
    Method("g2rpo-L123", "G²RPO, Λ = {1,2,3}", "g2rpo", ("algorithm.granularities=[1,2,3]",)),
    Method("dancegrpo", "DanceGRPO", "dancegrpo"),
    Method("flowgrpo", "Flow-GRPO", "flowgrpo"),
    Method("mixgrpo", "MixGRPO", "mixgrpo"),
    Method("egrpo", "E-GRPO (merged steps)", "egrpo"),
    Method("diffusionnft", "DiffusionNFT", "diffusionnft"),
)
REFERENCE = "g2rpo-L123"  # the budget is counted in iterations of the most expensive method
# What every method trains, alike: the study's design (one prompt per iteration, preference) is kept
# as it was measured, whatever the presets say.
TRAINING = ["model.name=builtin", "rewards=[{name: preference}]", "train.prompts_per_iteration=1"]
# G = 8 for every method (the presets, like the paper, use 12): measured on 2 cores, a budget of 40
# iterations of G²RPO {1,2,3} makes the full study about an hour at G = 12 and ~45 minutes at G = 8.
# `--set algorithm.group_size=12` restores the paper's group.
GROUP = ["algorithm.group_size=8"]
EVAL_REWARDS = ["preference", "adherence", "background", "colour", "shape", "count"]


@dataclass
class Plan:
    methods: list[Method]
    seeds: list[int]
    budget: int  # model evaluations (rollout + train) per run
    fractions: list[float]  # checkpoints where a run crosses these shares of the budget
    overrides: list[str]  # applied to every method's preset, before its own overrides
    eval_prompts: list[str]
    eval_seeds: int  # images per prompt, noise fixed by (prompt, seed)
    eval_rewards: list[str]
    cost_sweeps: dict[str, list[int]] = field(default_factory=dict)  # empty: no cost table
    cost_iterations: int = 2  # timed iterations per cost point, after one warm-up

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def method(self, key: str) -> Method:
        return next(m for m in self.methods if m.key == key)


def method_overrides(plan: Plan, method: Method, seed: int) -> list[str]:
    """A run's overrides: the plan's, the method's, then what the study needs of every run
    (no evaluation or checkpoints inside the Trainer: the study decides when to save)."""
    never = plan.budget + 1  # every iteration costs at least one evaluation, so the run ends before
    return [*plan.overrides, *method.overrides, f"train.seed={seed}", "train.eval_every=0",
            f"train.iterations={never}", f"train.checkpoint_every={never}", f"train.sample_every={never}"]


def run_config(plan: Plan, method: Method, seed: int):
    from engine.config import load_config

    return load_config(CONFIGS / f"{method.preset}.yaml", method_overrides(plan, method, seed))


def thresholds(budget: int, fractions: list[float]) -> list[int]:
    """The evaluation counts a run must reach for each fraction (the last is the budget itself)."""
    return [math.ceil(f * budget) for f in fractions]


def crossings(per_iteration: list[int], budget: int, fractions: list[float]) -> list[int | None]:
    """For each fraction, the iterations done when the running total of evaluations first reaches
    its threshold (None while not reached): where the checkpoint of that fraction is saved."""
    out, total, done = [], 0, []
    for count in per_iteration:
        total += count
        done.append(total)
    for need in thresholds(budget, fractions):
        out.append(next((n + 1 for n, total in enumerate(done) if total >= need), None))
    return out


def probe_evaluations(plan: Plan, method: Method) -> int:
    """Model evaluations of the first iteration of `method` (G²RPO's are the same every iteration;
    MixGRPO's and DanceGRPO's vary): one real iteration in a scratch folder, so the count is the engine's."""
    from engine.trainer import Trainer

    cfg = run_config(dataclasses.replace(plan, budget=1), method, plan.seeds[0])
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(cfg, scratch, sink=None)
        trainer.sink = None
        counts = trainer.iteration(0)["model_evaluations"]
    return counts["rollout"] + counts["train"]


def build_plan(quick: bool, seeds: int | None = None, budget: int | None = None,
               reference_iterations: int | None = None, overrides: list[str] = (),
               methods: list[str] | None = None, cost: bool = True) -> Plan:
    """The full study (3 seeds, a budget of 40 reference iterations, every held-out prompt at 2 seeds),
    or `--quick`: 2 seeds, 2 reference iterations, a quarter of the prompts at one seed, a smaller cost grid."""
    from engine.world import eval_prompts

    chosen = [m for m in METHODS if methods is None or m.key in methods]
    plan = Plan(
        methods=chosen,
        seeds=list(range(seeds or (2 if quick else 3))),
        budget=0,
        fractions=[0.5, 1.0] if quick else [0.25, 0.5, 0.75, 1.0],
        overrides=[*TRAINING, *GROUP, *overrides],
        eval_prompts=eval_prompts()[::4] if quick else eval_prompts(),
        eval_seeds=1 if quick else 2,
        eval_rewards=list(EVAL_REWARDS),
        cost_sweeps=({"G": [4, 12], "K": [2, 8], "Λ": [1, 3], "resolution": [16, 32]} if quick else
                     {"G": [4, 8, 12], "K": [2, 4, 8], "Λ": [1, 2, 3], "resolution": [16, 32, 64]}) if cost else {},
        cost_iterations=1 if quick else 2,
    )
    if budget is None:  # reference_iterations of G²RPO with every granularity
        reference = next(m for m in METHODS if m.key == REFERENCE)
        budget = (reference_iterations or (2 if quick else 40)) * probe_evaluations(plan, reference)
    plan.budget = budget
    return plan
