"""cost.md: seconds and model evaluations per iteration as G, |K|, |Λ| and the resolution grow.

Each point changes one setting from the presets' defaults (G = 12, K = {0..7}, Λ = {1,2,3}, the
built-in model at 32×32) and times a few iterations after one warm-up, in a scratch folder. G and
the resolution apply to every algorithm; |K| and |Λ| are G²RPO's own. The resolution points use
`tiny-flux` (the same architecture with random weights: cost only, its images mean nothing).
Measurements are cached in `cost.json`, so a re-run only times the points it lacks.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.study.plan import CONFIGS, Plan
from engine.study.runs import write_json

ALGORITHMS = ("g2rpo", "egrpo", "dancegrpo", "flowgrpo", "mixgrpo", "diffusionnft")  # presets, at their defaults
SWEEP_ALGORITHMS = {"G": ALGORITHMS, "K": ("g2rpo",), "Λ": ("g2rpo",), "resolution": ALGORITHMS}
SWEEP_LABELS = {"G": "group size G", "K": "branch steps |K| (K = {0..|K|−1})",
                "Λ": "granularities |Λ| (Λ = {1..|Λ|})", "resolution": "resolution (tiny-flux, random weights)"}


def sweep_overrides(sweep: str, value: int) -> list[str]:
    return {"G": [f"algorithm.group_size={value}"],
            "K": [f"algorithm.branch_steps={list(range(value))}"],
            "Λ": [f"algorithm.granularities={list(range(1, value + 1))}"],
            "resolution": ["model.name=tiny-flux", f"model.resolution={value}"]}[sweep]


def cost_points(plan: Plan) -> list[dict]:
    """Every (sweep, value, algorithm) to time, with the overrides that make it."""
    points = []
    for sweep, values in plan.cost_sweeps.items():
        for value in values:
            for preset in SWEEP_ALGORITHMS[sweep]:
                overrides = [*plan.overrides, *sweep_overrides(sweep, value)]
                points.append({"sweep": sweep, "value": value, "preset": preset, "overrides": overrides,
                               "iterations": plan.cost_iterations})
    return points


def point_config(point: dict):
    from engine.config import load_config

    never = point["iterations"] + 2  # no checkpoint, sample or evaluation inside the timed iterations
    return load_config(CONFIGS / f"{point['preset']}.yaml", [
        *point["overrides"], "train.eval_every=0", f"train.iterations={never}",
        f"train.checkpoint_every={never}", f"train.sample_every={never}"])


def point_id(point: dict) -> str:
    """The resolved config: the default point, in every sweep, is timed once."""
    return json.dumps([point_config(point).to_dict(), point["iterations"]], sort_keys=True)


def timed_records(cfg, n: int) -> list[dict]:
    """The records of n iterations of `cfg` in a scratch folder, after one untimed warm-up iteration."""
    from engine.training.trainer import Trainer

    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(cfg, scratch, sink=None)
        trainer.sink = None
        trainer.iteration(0)  # warm-up, not timed (and it also saves the base samples)
        return [trainer.iteration(it) for it in range(1, n + 1)]


def measure(point: dict) -> dict:
    """Evaluations and seconds per iteration of one config, after one warm-up iteration."""
    n = point["iterations"]
    records = timed_records(point_config(point), n)
    seconds = [r["time"]["total"] for r in records]
    evals = records[-1]["model_evaluations"]
    return {"rollout": evals["rollout"], "train": evals["train"], "seconds": float(np.mean(seconds)),
            "seconds_min": min(seconds), "seconds_max": max(seconds), "timed": n, "measured": time.time()}


def measure_cached(point: dict, root: Path) -> dict:
    path = Path(root) / "cost.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    key = point_id(point)
    if key not in cache:
        cache[key] = measure(point)
        write_json(path, cache)
    return cache[key]


def cost_markdown(plan: Plan, results: list[tuple[dict, dict]], machine: str) -> str:
    """One table per sweep: evaluations and seconds per iteration (1 prompt per iteration)."""
    default = point_config({"preset": "g2rpo", "overrides": plan.overrides, "iterations": plan.cost_iterations})
    a = default.algorithm
    lines = ["# Cost per iteration", "",
             f"{machine}. One prompt per iteration; each point is the mean of {plan.cost_iterations} timed "
             f"iteration(s) after one warm-up. Each sweep changes one setting; the others stay at G = {a.group_size}, "
             f"K = {a.branch_steps}, Λ = {a.granularities}, model `{default.model.name}`. Evaluations are model "
             "calls per sample (train: one forward and backward per distinct state of each trained step), as "
             "counted in the timed iterations: MixGRPO's fall as its window moves later (a longer shared ODE "
             "prefix) and DanceGRPO's vary with its randomly drawn trained steps; the study counts every "
             "iteration's own from the records."]
    for sweep in plan.cost_sweeps:
        lines += ["", f"## {SWEEP_LABELS[sweep]}", "",
                  f"| {sweep} | algorithm | evaluations (rollout + train) | s / iteration | ms / evaluation |",
                  "| --- | --- | --- | --- | --- |"]
        for point, result in results:
            if point["sweep"] != sweep:
                continue
            total = result["rollout"] + result["train"]
            lines.append(f"| {point['value']} | {point['preset']} | {total:,} ({result['rollout']:,} + "
                         f"{result['train']:,}) | {result['seconds']:.3f} | {1000 * result['seconds'] / total:.2f} |")
    return "\n".join(lines) + "\n"
