"""Train one (training reward, method, seed) run until it has reached every budget of its track, resumably.

The Trainer runs to `train.iterations`; the study instead drives `trainer.iteration(it)` in its own
loop, stops once every protocol's budget is reached (plan.crossings), and calls
`trainer.save_checkpoint(done)` wherever the run first crosses a fraction of one of them.

A run folder holds the Trainer's `records.jsonl` and `checkpoints/`, plus `spec.json` (what the run
is: its config, budgets and calibrated rate, written before training) and `run.json` (written once it
is finished: its checkpoints with the protocol points each stands for, and the evaluations and
training seconds spent there). A killed run resumes from its last checkpoint: `Trainer(resume=True)`
drops the records after it, and iterations redo exactly.
"""
from __future__ import annotations

import gc
import json
import os
from pathlib import Path

from tqdm.auto import tqdm

from engine.study.plan import Method, Plan, crossings, run_config, weights_sha256


def run_dir(root: Path, reward: str, method: Method, seed: int) -> Path:
    return Path(root) / "runs" / reward / method.key / f"seed{seed}"


def write_json(path: Path, data) -> None:
    """Write through a temporary file and rename: a kill never leaves half a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    os.replace(tmp, path)


def run_spec(plan: Plan, reward: str, method: Method, seed: int, rate: float | None) -> dict:
    """Everything that decides a run's result (so a changed plan is never mixed with old work)."""
    track = plan.track(reward)
    cfg = run_config(plan, reward, method, seed)
    return {"weights_sha256": weights_sha256(cfg), "reward": reward, "method": method.key, "seed": seed,
            "protocols": list(track.protocols), "budgets": {p: plan.budgets[p] for p in track.protocols}, "fractions": plan.fractions,
            "seconds_per_evaluation": rate, "config": cfg.to_dict()}


# Settings that change what a run writes beside its results, never the results: a folder trained
# before one of them existed (or with another value) still holds the same run.
RESULT_NEUTRAL = (("train", "branch_every"), ("train", "log_with"), ("train", "tracker_project"))


def neutral_free(config: dict) -> dict:
    """A config without the result-neutral settings."""
    config = {section: dict(values) if isinstance(values, dict) else values for section, values in config.items()}
    for section, key in RESULT_NEUTRAL:
        if isinstance(config.get(section), dict):
            config[section].pop(key, None)
    return config


def comparable(spec: dict) -> dict:
    """The spec without the result-neutral settings."""
    return {**spec, "config": neutral_free(spec.get("config", {}))}


def check_spec(folder: Path, spec: dict) -> None:
    path = folder / "spec.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("weights_sha256") != spec["weights_sha256"]:
            raise ValueError(f"{folder} was trained from other model weights (SHA-256 "
                             f"{str(saved.get('weights_sha256'))[:12]}…, these are {str(spec['weights_sha256'])[:12]}…): "
                             "a study never mixes results from two bases; use another --out")
        if comparable(saved) != comparable(spec):
            raise ValueError(f"{folder} holds a run of a different plan (budgets, seeds, overrides, calibration "
                             f"or config); use another --out, or delete that folder to redo it")
    else:
        write_json(path, spec)


def finished(root: Path, reward: str, method: Method, seed: int) -> dict | None:
    """The run's summary (run.json) if it is finished, else None."""
    path = run_dir(root, reward, method, seed) / "run.json"
    return json.loads(path.read_text()) if path.exists() else None


def evaluations(record: dict) -> int:
    return record["model_evaluations"]["rollout"] + record["model_evaluations"]["train"]


def summary(plan: Plan, protocols: tuple[str, ...], rate: float | None, records: list[dict]) -> list[dict]:
    """One entry per checkpoint, in iteration order: the protocol points (protocol, fraction) it stands
    for, with the iterations, evaluations and training seconds (measured, and at the calibrated rate) spent."""
    counts = [evaluations(r) for r in records]
    at: dict[int, list] = {}
    for point, done in crossings(counts, rate, plan, protocols).items():
        if done is not None:
            at.setdefault(done, []).append(list(point))
    return [{"iteration": done, "points": points, "evaluations": sum(counts[:done]),
             "seconds": sum(r["time"]["total"] for r in records[:done]),
             "calibrated_seconds": sum(counts[:done]) * rate if rate else None,
             "checkpoint": f"checkpoints/iter_{done:06d}"} for done, points in sorted(at.items())]


def reached(plan: Plan, protocols: tuple[str, ...], rate: float | None, records: list[dict]) -> bool:
    final = crossings([evaluations(r) for r in records], rate, plan, protocols)
    return all(final[p, plan.fractions[-1]] is not None for p in protocols)


def train_run(plan: Plan, reward: str, method: Method, seed: int, root: Path, rate: float | None,
              progress: bool = True) -> dict:
    """Train (or finish) one run; returns its run.json. A finished run is only checked, not redone.
    `rate` is the method's calibrated seconds per evaluation (None when its track has no seconds protocol)."""
    from engine.training.records import read_records
    from engine.training.trainer import Trainer

    protocols = plan.track(reward).protocols
    folder = run_dir(root, reward, method, seed)
    spec = run_spec(plan, reward, method, seed, rate)
    check_spec(folder, spec)
    done = finished(root, reward, method, seed)
    if done is not None:
        return done
    trainer = Trainer(run_config(plan, reward, method, seed), folder, resume=True)  # drops records past the checkpoint
    path = folder / "records.jsonl"
    records = read_records(path) if path.exists() else []
    if [r["iteration"] for r in records] != list(range(trainer.start_iteration)):
        raise ValueError(f"{path} does not hold exactly the iterations before the checkpoint it resumes from")
    bar = tqdm(desc=f"{reward} {method.key} seed {seed}", initial=len(records), total=None, leave=False,
               position=1, disable=not progress, dynamic_ncols=True)
    it = trainer.start_iteration
    while not reached(plan, protocols, rate, records):
        records.append(trainer.iteration(it))
        it += 1
        if it in {entry["iteration"] for entry in summary(plan, protocols, rate, records)}:
            trainer.save_checkpoint(it)
        bar.set_postfix({name: f"{v['mean']:.4f}" for name, v in records[-1]["reward"].items()})
        bar.update(1)
    bar.close()
    del trainer
    gc.collect()
    result = {**spec, "iterations": len(records), "evaluations": sum(map(evaluations, records)),
              "checkpoints": summary(plan, protocols, rate, records)}
    write_json(folder / "run.json", result)
    return result
