"""Seconds per model evaluation of each (training reward, method): the clock of the seconds protocol.

Measured once per study folder (`calibration.json`), on a scratch run of the method's own config: one
warm-up iteration, then `plan.calibration_iterations` timed ones; the rate is their seconds over their
model evaluations (an iteration's cost follows its evaluations: MixGRPO's fall as its window moves,
DanceGRPO's vary with the steps it draws). A run then "spends" evaluations × rate seconds, so where
it stops under the seconds protocol is fixed once the calibration is, whatever the load later.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from engine.study.plan import Method, Plan, run_config
from engine.study.cost import timed_records
from engine.study.runs import evaluations as run_evaluations, neutral_free, write_json


def calibration_path(root: Path) -> Path:
    return Path(root) / "calibration.json"


def calibration_key(plan: Plan, reward: str, method: Method) -> str:
    cfg = run_config(plan, reward, method, plan.seeds[0]).to_dict()
    return json.dumps([cfg, plan.calibration_iterations], sort_keys=True)


def measure(plan: Plan, reward: str, method: Method) -> dict:
    records = timed_records(run_config(plan, reward, method, plan.seeds[0]), plan.calibration_iterations)
    seconds = sum(r["time"]["total"] for r in records)
    evaluations = sum(map(run_evaluations, records))
    return {"method": method.key, "reward": reward, "seconds_per_evaluation": seconds / evaluations,
            "seconds_per_iteration": seconds / len(records), "evaluations_per_iteration": evaluations / len(records),
            "timed_iterations": len(records), "measured": time.time()}


def _same_run(key_a: str, key_b: str) -> bool:
    """Two keys name the same calibration run: their configs equal but for result-neutral settings."""
    (config_a, iterations_a), (config_b, iterations_b) = json.loads(key_a), json.loads(key_b)
    return iterations_a == iterations_b and neutral_free(config_a) == neutral_free(config_b)


def seconds_per_evaluation(plan: Plan, root: Path, reward: str, method: Method) -> float:
    """The cached rate, measured now if this folder has none for this config (settings that change
    only what a run writes beside its results, such as train.branch_every, do not count)."""
    path = calibration_path(root)
    cache = json.loads(path.read_text()) if path.exists() else {}
    key = calibration_key(plan, reward, method)
    found = key if key in cache else next((k for k in cache if _same_run(k, key)), None)
    if found is None:
        found = key
        cache[key] = measure(plan, reward, method)
        write_json(path, cache)
    return cache[found]["seconds_per_evaluation"]


def calibrations(root: Path) -> list[dict]:
    path = calibration_path(root)
    return list(json.loads(path.read_text()).values()) if path.exists() else []
