"""What the UI reads, in as few and as small queries as possible.

Polling is incremental: `latest_metrics(run, since_iteration=n)` and `attribution_history(run,
since_iteration=n)` return only iterations after n, so a page that already drew n iterations reads
one new row per iteration; the heatmap reads one iteration's rows.
"""
from __future__ import annotations

import math
from itertools import groupby

from sqlalchemy import func, select

from jobs import db
from jobs.models import Attribution, Checkpoint, Evaluation, Metric, Run, Sample

CURVES = ("iteration", "created_at", "reward", "loss", "ratio_mean", "ratio_min", "ratio_max", "clip_fraction",
          "approx_kl", "grad_norm", "seconds", "model_evaluations", "rewards", "record")
HISTORY_VALUES = ("abs_advantage", "reward_std", "agreement")  # per (iteration, k), averaged over prompts
HISTORY_COLUMNS = 500  # the step x iteration heatmap never needs more columns than a screen has


def latest_metrics(run_id: int, since_iteration: int = -1) -> list[dict]:
    """Scalar metrics of iterations > since_iteration, in order (`rewards`: {name: {mean, std}}; `record`: the rest of the engine record, e.g. time, kl)."""
    columns = [Metric.__table__.c[c] for c in CURVES]
    with db.get_engine().connect() as c:  # Core, not the ORM: a 10,000-row read is 15% faster
        rows = c.execute(select(*columns).where(Metric.run_id == run_id, Metric.iteration > since_iteration)
                         .order_by(Metric.iteration)).mappings().all()
    return [dict(row) for row in rows]


def full_record(metric_record: dict, attributions: list[Attribution]) -> dict:
    """The engine's record again, from a metrics row's JSON and its iteration's attribution rows."""
    record = dict(metric_record)
    g = record.get("g2rpo")
    if g is not None and attributions:
        by_cell = {(a.prompt, a.k): a for a in attributions}
        cells = [[by_cell[p, k] for k in g["branch_steps"]] for p in range(len(record["prompts"]))]
        models = range(len(attributions[0].rewards))
        record["g2rpo"] = {**g,
                           "rewards": [[[c.rewards[m] for c in row] for row in cells] for m in models],
                           "advantages": [[[c.advantages[m] for c in row] for row in cells] for m in models],
                           "mixed_advantage": [[c.mixed_advantage for c in row] for row in cells]}
    return record


def heatmap(run_id: int, iteration: int | None = None) -> dict | None:
    """G²RPO's attribution of one iteration (default: the latest), in the record's layout:
    rewards and advantages [reward model][prompt][k][λ][member], mixed_advantage [prompt][k][member],
    with the labels (branch_steps, granularities, reward_names, prompts). None before any."""
    with db.session() as s:
        if iteration is None:
            iteration = s.scalar(select(func.max(Attribution.iteration)).where(Attribution.run_id == run_id))
            if iteration is None:
                return None
        record = s.scalar(select(Metric.record).where(Metric.run_id == run_id, Metric.iteration == iteration))
        cells = s.scalars(select(Attribution).where(Attribution.run_id == run_id,
                                                    Attribution.iteration == iteration)).all()
    if record is None or not cells:
        return None
    g = full_record(record, list(cells))["g2rpo"]
    return {"iteration": iteration, "prompts": record["prompts"], "reward_names": list(record["reward"]), **g}


def attribution_window(run_id: int, last: int | None = None, window: int = 1) -> dict | None:
    """G²RPO's attribution over the `window` iterations ending at `last` (default: the latest), one
    cell per (iteration, prompt, branch step k): advantages [reward model][λ][member], mixed_advantage
    [member], reward_std; with the labels of iteration `last`'s record. None before any."""
    with db.session() as s:
        if last is None:
            last = s.scalar(select(func.max(Attribution.iteration)).where(Attribution.run_id == run_id))
            if last is None:
                return None
        record = s.scalar(select(Metric.record).where(Metric.run_id == run_id, Metric.iteration == last))
        rows = s.execute(select(Attribution.iteration, Attribution.prompt, Attribution.k, Attribution.advantages,
                                Attribution.mixed_advantage, Attribution.reward_std)
                         .where(Attribution.run_id == run_id, Attribution.iteration <= last,
                                Attribution.iteration > last - max(1, window))
                         .order_by(Attribution.iteration, Attribution.prompt, Attribution.k)).mappings().all()
    if record is None or not rows or "g2rpo" not in record:
        return None
    g = record["g2rpo"]
    return {"first": rows[0]["iteration"], "last": last, "iterations": len({r["iteration"] for r in rows}),
            "prompts": record["prompts"], "reward_names": list(record["reward"]), "branch_steps": g["branch_steps"],
            "granularities": g["granularities"], "merge_steps": g.get("merge_steps"),
            "cells": [dict(row) for row in rows]}


def attribution_history(run_id: int, since_iteration: int = -1, every: int | None = None) -> dict:
    """Per (iteration, branch step), averaged over prompts: mean |mixed advantage| (where in the
    denoising trajectory the learning signal sits), the reward's std across the group at the finest
    granularity (how much reward the noise injected at k moves) and the granularities' agreement.

    Iterations are binned `every` at a time (default: the run's planned iterations / HISTORY_COLUMNS,
    fixed for a run so polls append to the same bins); `iterations` are the bins' first iterations.
    A poll with since_iteration = the last bin's first iteration - 1 refreshes that bin and adds new ones."""
    with db.session() as s:
        if every is None:
            planned = s.scalar(select(Run.iterations).where(Run.id == run_id)) or 1
            every = max(1, math.ceil(planned / HISTORY_COLUMNS))
        start = (Attribution.iteration // every) * every  # the bin's first iteration
        rows = s.execute(select(start, Attribution.k, *(func.avg(getattr(Attribution, v)) for v in HISTORY_VALUES))
                         .where(Attribution.run_id == run_id, Attribution.iteration > since_iteration)
                         .group_by(start, Attribution.k).order_by(start, Attribution.k)).all()
    steps = sorted({row[1] for row in rows})
    history = {"iterations": [], "every": every, "branch_steps": steps, **{v: [] for v in HISTORY_VALUES}}
    for it, group in groupby(rows, key=lambda r: r[0]):
        by_k = {row[1]: row[2:] for row in group}
        history["iterations"].append(it)
        for j, value in enumerate(HISTORY_VALUES):
            history[value].append([by_k[k][j] if k in by_k else None for k in steps])
    return history


def records(run_id: int) -> list[dict]:
    """Every stored iteration as the engine wrote it (export; the tests compare with records.jsonl)."""
    with db.session() as s:
        metrics = s.execute(select(Metric.iteration, Metric.record).where(Metric.run_id == run_id)
                            .order_by(Metric.iteration)).all()
        cells = s.scalars(select(Attribution).where(Attribution.run_id == run_id)
                          .order_by(Attribution.iteration)).all()
    by_iteration = {it: list(group) for it, group in groupby(cells, key=lambda a: a.iteration)}
    return [full_record(record, by_iteration.get(it, [])) for it, record in metrics]


def _rows(model, run_id: int, order) -> list[dict]:
    with db.session() as s:
        return [row.model_dump() for row in s.scalars(select(model).where(model.run_id == run_id).order_by(*order))]


def samples(run_id: int) -> list[dict]:
    """Sample images in drawing order; `path` is relative to the run folder."""
    return _rows(Sample, run_id, (Sample.trained, Sample.position))


def checkpoints(run_id: int) -> list[dict]:
    return _rows(Checkpoint, run_id, (Checkpoint.iteration,))


def evaluations(run_id: int) -> list[dict]:
    """Held-out evaluations: the trainer's (by iterations trained; 0 is the base model), then any added later."""
    return _rows(Evaluation, run_id, (Evaluation.trained.is_(None), Evaluation.trained, Evaluation.id))


def run_summaries(run_ids: list[int], recent: int = 10) -> dict[int, dict]:
    """For the runs table, per run: the latest weighted reward and the mean seconds of its last
    `recent` iterations (for an ETA), in two small queries whatever the number of runs."""
    if not run_ids:
        return {}
    with db.session() as s:
        latest = s.execute(select(Metric.run_id, Metric.reward).join(Run, Run.id == Metric.run_id)
                           .where(Metric.run_id.in_(run_ids), Metric.iteration == Run.last_iteration)).all()
        pace = s.execute(select(Metric.run_id, func.avg(Metric.seconds)).join(Run, Run.id == Metric.run_id)
                         .where(Metric.run_id.in_(run_ids), Metric.iteration > Run.last_iteration - recent)
                         .group_by(Metric.run_id)).all()
    summaries = {run_id: {"reward": None, "seconds_per_iteration": None} for run_id in run_ids}
    for run_id, reward in latest:
        summaries[run_id]["reward"] = reward
    for run_id, seconds in pace:
        summaries[run_id]["seconds_per_iteration"] = seconds
    return summaries


def measured_rate(model: str, algorithm: str, runs: int = 3, recent: int = 20) -> dict | None:
    """Seconds per model evaluation on this machine: over the last `recent` iterations of the
    newest `runs` runs of this model and algorithm ({"seconds_per_evaluation", "runs"}), or None."""
    with db.session() as s:
        ids = s.scalars(select(Run.id).where(Run.model == model, Run.algorithm == algorithm,
                                             Run.last_iteration.is_not(None)).order_by(Run.id.desc()).limit(runs)).all()
        seconds = evaluations = 0.0
        for run_id in ids:
            for spent, count in s.execute(select(Metric.seconds, Metric.model_evaluations)
                                          .where(Metric.run_id == run_id)
                                          .order_by(Metric.iteration.desc()).limit(recent)):
                if spent is not None and count:
                    seconds, evaluations = seconds + spent, evaluations + count
    if not evaluations:
        return None
    return {"seconds_per_evaluation": seconds / evaluations, "runs": list(ids)}
