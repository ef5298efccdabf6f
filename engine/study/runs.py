"""Train one (method, seed) run to the plan's budget of model evaluations, resumably.

The Trainer runs to `train.iterations`; the study instead stops at the first iteration whose running
total of evaluations (rollout + train, from the records) reaches the budget, and saves a checkpoint
when the total first crosses each budget fraction. So it drives `trainer.iteration(it)` in its own
loop and calls `trainer.save_checkpoint(done)` itself.

A run folder holds the Trainer's `records.jsonl` and `checkpoints/`, plus `spec.json` (what the run
is: its config and budget, written before training) and `run.json` (written once it is finished: its
checkpoints with the evaluations and training seconds at each). A killed run resumes from its last
checkpoint: `Trainer(resume=True)` drops the records after it, and iterations redo exactly.
"""
from __future__ import annotations

import gc
import json
import math
import os
from pathlib import Path

from tqdm.auto import tqdm

from engine.study.plan import Method, Plan, crossings, run_config


def run_dir(root: Path, method: Method, seed: int) -> Path:
    return Path(root) / "runs" / method.key / f"seed{seed}"


def write_json(path: Path, data) -> None:
    """Write through a temporary file and rename: a kill never leaves half a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    os.replace(tmp, path)


def run_spec(plan: Plan, method: Method, seed: int) -> dict:
    """Everything that decides a run's result (so a changed plan is never mixed with old work)."""
    return {"method": method.key, "seed": seed, "budget": plan.budget, "fractions": plan.fractions,
            "config": run_config(plan, method, seed).to_dict()}


def check_spec(folder: Path, spec: dict) -> None:
    path = folder / "spec.json"
    if path.exists():
        if json.loads(path.read_text()) != spec:
            raise ValueError(f"{folder} holds a run of a different plan (budget, seeds, overrides or config); "
                             f"use another --out, or delete that folder to redo it")
    else:
        write_json(path, spec)


def finished(root: Path, method: Method, seed: int) -> dict | None:
    """The run's summary (run.json) if it is finished, else None."""
    path = run_dir(root, method, seed) / "run.json"
    return json.loads(path.read_text()) if path.exists() else None


def summary(plan: Plan, records: list[dict]) -> list[dict]:
    """One entry per fraction: the checkpoint there, with the evaluations and training seconds spent."""
    counts = [r["model_evaluations"]["rollout"] + r["model_evaluations"]["train"] for r in records]
    out = []
    for fraction, done in zip(plan.fractions, crossings(counts, plan.budget, plan.fractions)):
        if done is None:  # not reached yet
            continue
        out.append({"fraction": fraction, "iteration": done, "evaluations": sum(counts[:done]),
                    "seconds": sum(r["time"]["total"] for r in records[:done]),
                    "checkpoint": f"checkpoints/iter_{done:06d}"})
    return out


def train_run(plan: Plan, method: Method, seed: int, root: Path, progress: bool = True) -> dict:
    """Train (or finish) one run; returns its run.json. A finished run is only checked, not redone."""
    from engine.records import read_records
    from engine.trainer import Trainer

    folder = run_dir(root, method, seed)
    spec = run_spec(plan, method, seed)
    check_spec(folder, spec)
    done = finished(root, method, seed)
    if done is not None:
        return done
    trainer = Trainer(run_config(plan, method, seed), folder, resume=True)  # drops records past the checkpoint
    path = folder / "records.jsonl"
    records = read_records(path) if path.exists() else []
    if [r["iteration"] for r in records] != list(range(trainer.start_iteration)):
        raise ValueError(f"{path} does not hold exactly the iterations before the checkpoint it resumes from")
    total = sum(r["model_evaluations"]["rollout"] + r["model_evaluations"]["train"] for r in records)
    bar = tqdm(desc=f"{method.key} seed {seed}", initial=len(records), total=None, leave=False,
               position=1, disable=not progress, dynamic_ncols=True)
    it = trainer.start_iteration
    while total < plan.budget:
        record = trainer.iteration(it)
        records.append(record)
        count = record["model_evaluations"]["rollout"] + record["model_evaluations"]["train"]
        total, it = total + count, it + 1
        if it in {entry["iteration"] for entry in summary(plan, records)}:
            trainer.save_checkpoint(it)
        bar.total = it + math.ceil((plan.budget - total) / count) if total < plan.budget else it
        bar.set_postfix({name: f"{v['mean']:.4f}" for name, v in record["reward"].items()})
        bar.update(1)
    bar.close()
    del trainer
    gc.collect()
    result = {**spec, "iterations": len(records), "evaluations": total, "checkpoints": summary(plan, records)}
    write_json(folder / "run.json", result)
    return result
