"""What the study runs: methods, training rewards, seeds, the three protocols' budgets, the scoring sets.

Three protocols compare the methods (issue 13), each a budget a run must reach:
- `iterations`: the paper's protocol, the same number of iterations, each method with its authors'
  update schedule as its preset has it (G²RPO one AdamW step per branch step, the baselines one per
  iteration);
- `evaluations`: the same number of model evaluations (rollout + training, counted by the engine);
- `seconds`: the same training wall time on this machine, read from a calibration (seconds per model
  evaluation of each method, measured once at the start and cached), so that where a run stops does
  not depend on the load of the moment and a killed study resumes to the same result.
One run per (training reward, method, seed) goes on until it has reached every budget of its track,
and saves a checkpoint wherever it first crosses a fraction of one of them.

A plan is plain data (JSON-serialisable): the runner, the scorer and the report read it, and each run
folder keeps its part of it so a later invocation can tell whether finished work still matches.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[2] / "configs"  # the presets, one per algorithm
PROTOCOLS = ("iterations", "evaluations", "seconds")
PROTOCOL_LABELS = {"iterations": "the paper's protocol: equal iterations, each method's own update schedule",
                   "evaluations": "equal model evaluations (rollout + training)",
                   "seconds": "equal training wall time (calibrated on this machine)"}
NEVER = 100_000  # train.iterations for every run: the study, not the Trainer, decides where it stops


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
BY_KEY = {m.key: m for m in METHODS}
REFERENCE = "dancegrpo"  # the baseline every method's difference is also measured against
# The full study's methods: Λ = {1,2} is left out by default to keep the run inside its time (Λ = {1}
# against {1,2,3} is the granularity question); `--methods` puts it back.
MAIN_METHODS = ("g2rpo-L1", "g2rpo-L123", "dancegrpo", "mixgrpo", "diffusionnft")
# Flow-GRPO and E-GRPO are left out of the default too (issue 28: the five above first, so the full
# study fits in 150 minutes on 2 cores at budgets where the curves separate); `--methods` adds them.
# The reward-hacking track trains on the learned `preference` under the paper's protocol only; it is in
# the quick study and, for time, opt-in (`--hacking`) in the full one.
HACKING_METHODS = ("g2rpo-L123", "dancegrpo", "mixgrpo", "diffusionnft")
EVAL_REWARDS = ["adherence", "preference", "background", "colour", "shape", "count"]


# The full study's budgets, pinned to what the G²RPO preset spends in 40 iterations (K = 0..3: 2,912 model
# evaluations an iteration), where the curves of the G²RPO sweep and the README runs have separated from
# the base and from each other but not yet levelled off (docs/study.md says how they were chosen). The
# 160 s assumed 4 s an iteration; a later timing on the quiet machine gave about 6 s, so there G²RPO
# meets the time budget after about 27 iterations, not 40. The baselines whose iterations are cheaper get as many more
# iterations as the same evaluations or seconds buy.
FULL_BUDGETS = {"iterations": 40, "evaluations": 120_000, "seconds": 160.0}


@dataclass(frozen=True)
class Track:
    """Runs that train on one reward: which methods, under which protocols."""

    reward: str
    methods: tuple[str, ...]
    protocols: tuple[str, ...]


@dataclass
class Plan:
    methods: list[Method]  # every method some track trains
    tracks: list[Track]
    seeds: list[int]
    budgets: dict[str, float]  # protocol -> iterations, model evaluations, seconds
    fractions: list[float]  # checkpoints where a run first crosses these shares of each budget
    overrides: list[str]  # applied to every method's preset, before its own overrides
    eval_prompts: list[str]  # held-out prompts
    train_prompts: list[str]  # a fixed subset of the training prompts (the in-domain scores)
    eval_seeds: int  # images per held-out prompt (training prompts: one), noise fixed by (prompt, seed)
    eval_rewards: list[str]
    target: float = 0.02  # the evaluations-to-target table: held-out adherence this far above the base's
    calibration_iterations: int = 2  # timed iterations per method for the seconds protocol, after a warm-up
    cost_sweeps: dict[str, list[int]] = field(default_factory=dict)  # empty: no cost table
    cost_iterations: int = 2

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def method(self, key: str) -> Method:
        return next(m for m in self.methods if m.key == key)

    def track(self, reward: str) -> Track:
        return next(t for t in self.tracks if t.reward == reward)


def method_overrides(plan: Plan, reward: str, method: Method, seed: int) -> list[str]:
    """A run's overrides: the plan's, the method's, its training reward, then what the study needs of
    every run (no evaluation, samples or checkpoints inside the Trainer: the study decides when to save)."""
    return [*plan.overrides, *method.overrides, f"rewards=[{{name: {reward}}}]", f"train.seed={seed}",
            "train.eval_every=0", f"train.iterations={NEVER}", f"train.checkpoint_every={NEVER}",
            f"train.sample_every={NEVER}"]


def weights_sha256(cfg) -> str | None:
    """The SHA-256 of the model weights a run starts from (the built-in model's file; None for the random
    tiny-flux test model): part of every run's spec and every score's cache key, so a study never mixes
    results measured on different bases."""
    if cfg.model.name != "builtin":
        return None
    from engine.models.builtin import weights_sha256 as sha

    return sha()


def run_config(plan: Plan, reward: str, method: Method, seed: int):
    from engine.config import load_config

    return load_config(CONFIGS / f"{method.preset}.yaml", method_overrides(plan, reward, method, seed))


def crossings(per_iteration: list[int], seconds_per_evaluation: float | None, plan: Plan,
              protocols: tuple[str, ...]) -> dict[tuple[str, float], int | None]:
    """For each (protocol, fraction), the iterations done when the run first reaches that share of the
    protocol's budget (None while not reached): where a checkpoint is saved. `per_iteration` is each
    done iteration's model evaluations; the seconds protocol counts them at the calibrated rate."""
    totals, running = [], 0
    for count in per_iteration:
        running += count
        totals.append(running)
    out = {}
    for protocol in protocols:
        for fraction in plan.fractions:
            need = fraction * plan.budgets[protocol]
            if protocol == "iterations":
                at = math.ceil(need)
                out[protocol, fraction] = at if at <= len(totals) else None
                continue
            rate = 1.0 if protocol == "evaluations" else seconds_per_evaluation
            out[protocol, fraction] = next((n + 1 for n, total in enumerate(totals) if total * rate >= need - 1e-9),
                                           None)
    return out


def build_plan(quick: bool, seeds: int | None = None, budgets: dict[str, float] | None = None,
               overrides: list[str] = (), methods: list[str] | None = None, hacking: bool | None = None,
               cost: bool = False, target: float = 0.02) -> Plan:
    """The full study (5 seeds, FULL_BUDGETS, every held-out prompt and a third of the training prompts,
    no hacking track unless asked), or `--quick`: 2 seeds, budgets of about two iterations, a quarter of
    the prompts, the hacking track with two methods."""
    hacking = quick if hacking is None else hacking
    from engine.world import eval_prompts, train_prompts

    main = list(methods or MAIN_METHODS)
    hack = [m for m in (("g2rpo-L123", "diffusionnft") if quick else HACKING_METHODS) if methods is None or m in main]
    tracks = [Track("adherence", tuple(main), PROTOCOLS)]
    if hacking and hack:
        tracks.append(Track("preference", tuple(hack), ("iterations",)))
    used = {k for t in tracks for k in t.methods}
    defaults = {"iterations": 2, "evaluations": 2500, "seconds": 8.0} if quick else FULL_BUDGETS
    return Plan(
        methods=[m for m in METHODS if m.key in used],
        tracks=tracks,
        seeds=list(range(seeds or (2 if quick else 5))),
        budgets={**defaults, **(budgets or {})},
        fractions=[0.5, 1.0],
        overrides=["model.name=builtin", *overrides],
        eval_prompts=eval_prompts()[::4] if quick else eval_prompts(),
        train_prompts=train_prompts()[::12] if quick else train_prompts()[::3],
        eval_seeds=1,
        eval_rewards=list(EVAL_REWARDS),
        target=target,
        calibration_iterations=1 if quick else 2,
        cost_sweeps=({"G": [4, 12], "K": [2, 8], "Λ": [1, 3], "resolution": [16, 32]} if quick else
                     {"G": [4, 8, 12], "K": [2, 4, 8], "Λ": [1, 2, 3], "resolution": [16, 32, 64]}) if cost else {},
        cost_iterations=1 if quick else 2,
    )
