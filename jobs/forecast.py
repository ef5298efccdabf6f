"""How long a run will take, as a range: shown before launch, stored with the run, set beside the
measured time once it has run.

    forecast(cfg) -> {"low_s", "high_s", "seconds_per_evaluation", "basis", "evaluations", ...}

Model evaluations are counted exactly (engine.config.estimate.evaluations: rollout, training, samples and
held-out evaluations averaged per iteration). Seconds per evaluation, best first:

1. measured on this machine by recent runs of the same model and algorithm: a low quantile of their
   iterations' seconds per evaluation (IDLE_QUANTILE), so iterations slowed by other work on the
   machine do not make every later forecast pessimistic;
2. for the built-in and tiny-flux models, the rates fitted on this project's 2-core CPU
   (engine.config.estimate): a machine that has not trained yet (a faster CPU, a GPU) is not measured
   until its first run;
3. for FLUX and SD3.5, the assumed GPU throughput (rough).

The range: LOW of that time at best, HIGH at worst, the upper end multiplied by the machine's present
load when the worker runs on this machine (a CPU busy with other work trains proportionally slower),
plus STARTUP_S for loading the model and the base model's samples and held-out scores.
"""
from __future__ import annotations

import os

from engine.config.estimate import SMALL, estimate, evaluations

IDLE_QUANTILE = 0.2
LOW, HIGH = 0.85, 1.2
ROUGH_LOW, ROUGH_HIGH = 0.5, 2.0  # FLUX and SD3.5: not measured, an assumed throughput
STARTUP_S = {"builtin": 10.0, "tiny-flux": 10.0}  # the rest: minutes to load, counted in the rough range
PIPELINE_STARTUP_S = 180.0


def measured_rate(model: str, algorithm: str) -> dict | None:
    from jobs import queries

    return queries.measured_rate(model, algorithm, quantile=IDLE_QUANTILE)


def load_factor() -> float:
    """How much slower than alone a CPU run would go now: the load average over the cores, when the
    worker shares this machine and no run of ours causes the load (a queued run waits for it)."""
    if os.environ.get("G2RPO_WORKER", "embedded") == "external":
        return 1.0
    from sqlalchemy import func, select

    from jobs import db
    from jobs.models import Run

    with db.session() as s:
        if s.scalar(select(func.count()).where(Run.status == "running")):
            return 1.0
    try:
        return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    except OSError:
        return 1.0


def forecast(cfg) -> dict:
    rollout, train = evaluations(cfg)
    per_iteration, iterations = rollout + train, cfg.train.iterations
    est = estimate(cfg)
    small = cfg.model.name in SMALL
    rate = measured_rate(cfg.model.name, cfg.algorithm.name)
    if rate is not None:
        per_evaluation = rate["seconds_per_evaluation"]
        runs = ", ".join(f"#{r}" for r in rate["runs"])
        basis = f"measured on this machine in run{'s' if len(rate['runs']) > 1 else ''} {runs}"
        low, high = LOW, HIGH
    else:
        per_evaluation = est.seconds / max(1, per_iteration * iterations)
        basis = est.basis
        low, high = (LOW, HIGH) if small else (ROUGH_LOW, ROUGH_HIGH)
    startup = STARTUP_S.get(cfg.model.name, PIPELINE_STARTUP_S)
    seconds = per_evaluation * per_iteration * iterations
    factor = load_factor() if small else 1.0
    return {"low_s": startup + low * seconds, "high_s": startup + high * seconds * factor,
            "seconds_per_evaluation": per_evaluation, "evaluations_per_iteration": per_iteration,
            "rollout": rollout, "train": train, "iterations": iterations, "load_factor": factor, "basis": basis,
            "peak_bytes": est.peak_bytes}


def took_s(run: dict) -> float | None:
    """A finished run's wall time (started to finished), or None."""
    if run.get("started_at") and run.get("finished_at"):
        from datetime import datetime

        start, end = (datetime.fromisoformat(str(run[k])) for k in ("started_at", "finished_at"))
        return (end - start).total_seconds()
    return None
