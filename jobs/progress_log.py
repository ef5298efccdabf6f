"""The lines a training job writes to its run's log.txt, so the log tells what happened without the
Monitor: where it starts, one line per iteration (reward, held-out scores when evaluated, seconds,
model evaluations, what it saved), warnings, and checkpoints kept on a cancel.

Iterations are counted from 1 here, as a person counts them ("iteration 21 of 40" is the 21st),
while the records and the plots index them from 0.
"""
from __future__ import annotations

import warnings


def start_line(run_id: int, start: int, iterations: int, device: str) -> str:
    """Where the job starts: from the beginning, or after `start` iterations a checkpoint holds."""
    if start >= iterations:
        return f"run {run_id}: all {iterations} iterations are done; nothing left to train"
    if start == 0:
        return f"run {run_id}: training iterations 1–{iterations} on {device}"
    return (f"run {run_id}: continuing at iteration {start + 1} of {iterations}, from its checkpoint after "
            f"{start} iterations, on {device}")


def _scores(scores: dict) -> str:
    return ", ".join(f"{name} {value:.4g}" for name, value in scores.items() if value is not None)


def iteration_line(record: dict, iterations: int) -> str:
    """One line for an iteration's record, e.g.
    `[3/20] reward adherence 0.512 ±0.103 · held-out adherence 0.634 · 6.2 s · 1,536 model evaluations · checkpoint saved`."""
    rewards = " ".join(f"{name} {v['mean']:.4g} ±{v['std']:.3g}" if v.get("mean") is not None else f"{name} n/a"
                       for name, v in (record.get("reward") or {}).items())
    parts = [f"[{record['iteration'] + 1}/{iterations}] reward {rewards}"]
    if record.get("evaluation"):
        parts.append(f"held-out {_scores(record['evaluation']['scores'])}")
    parts.append(f"{record['time']['total']:.1f} s")
    parts.append(f"{sum(record['model_evaluations'].values()):,} model evaluations")
    if record.get("samples"):
        parts.append("samples saved")
    if record.get("checkpoint"):
        parts.append(f"checkpoint {record['checkpoint']}")
    return " · ".join(parts)


def before_training(record: dict) -> list[str]:
    """What the first iteration of a new run did before training: the base model's scores."""
    lines = []
    if record.get("base_evaluation"):
        lines.append(f"base model: held-out {_scores(record['base_evaluation']['scores'])}")
    if record.get("base_samples"):
        lines.append(f"base model: {len(record['base_samples'])} samples saved")
    return lines


def warnings_of(record: dict) -> list[str]:
    """What in an iteration's record a researcher should know of: a reward that did not vary
    within the group gives no learning signal (every advantage is 0)."""
    flat = [name for name, v in (record.get("reward") or {}).items() if v.get("std") == 0]
    if flat:
        return [f"warning: [{record['iteration'] + 1}] {', '.join(flat)} did not vary across the group: "
                "no learning signal from it this iteration"]
    return []


def lines(record: dict, iterations: int) -> list[str]:
    """Every log line of one record, in order."""
    return [*before_training(record), iteration_line(record, iterations), *warnings_of(record)]


def cancel_checkpoint_line(trained: int, path: str) -> str:
    return f"checkpoint after {trained} iterations kept on cancel: {path}"


def one_line_warnings() -> None:
    """Python warnings as one `warning: ...` line each (not the default's file, line and source)."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {category.__name__}: {' '.join(str(message).split())}", flush=True)

    warnings.showwarning = show
