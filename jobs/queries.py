"""What the UI reads, in as few and as small queries as possible.

The curves (`curves`) are read downsampled to at most rollup.MAX_POINTS rows whatever the run's
length, from buckets folded when the iterations were stored (jobs/rollup.py), with the step x
iteration attribution summary in the same rows (`history`). Polling is incremental: a page that
drew the rows up to a bucket asks for the buckets from its last one on. Full detail (one
iteration's record and member arrays) is read only for the iteration a user opens (`heatmap`).
`latest_metrics` and `records` read every stored iteration: the export and the API, not the Monitor.
"""
from __future__ import annotations

from operator import itemgetter

import numpy as np
from sqlalchemy import func, or_, select

from jobs import attribution, db, rollup
from jobs.models import Attribution, Checkpoint, Evaluation, Metric, Run, Sample
from jobs.sink import SCALARS

CURVES = ("iteration", "created_at", "reward", "loss", "ratio_mean", "ratio_min", "ratio_max", "clip_fraction",
          "approx_kl", "grad_norm", "seconds", "model_evaluations", "rewards", "record")
HISTORY_VALUES = attribution.SUMMARY  # per (iteration, k), averaged over prompts
RECORD = (Metric.record, Metric.rewards, *(getattr(Metric, key) for key in SCALARS))  # what full_record reads


def latest_metrics(run_id: int, since_iteration: int = -1) -> list[dict]:
    """Every metrics row of iterations > since_iteration, in order (`rewards`: {name: {mean, std}};
    `record`: the rest of the engine record, e.g. time, kl). Grows with the run: the curves read `curves`."""
    columns = [Metric.__table__.c[c] for c in CURVES]
    with db.get_engine().connect() as c:  # Core, not the ORM: a 10,000-row read is 15% faster
        rows = c.execute(select(*columns).where(Metric.run_id == run_id, Metric.iteration > since_iteration)
                         .order_by(Metric.iteration)).mappings().all()
    return [dict(row) for row in rows]


def curve_every(stored: int) -> int:
    """Iterations per curve row for a run with `stored` iterations (1 up to rollup.MAX_POINTS)."""
    return rollup.BASE ** rollup.level_for(stored)


def curves(run_id: int, since_iteration: int = -1, every: int | None = None) -> dict:
    """The run's curves, one row per `every` iterations (default: as few as keep it within
    rollup.MAX_POINTS rows for the iterations stored), rows starting after since_iteration:
    {"every", "stored": iterations stored, "rows"}. A row has the keys of a metrics row, averaged
    over its iterations (`seconds` and `model_evaluations` summed), with `count` and `last`, and
    `low`/`high` (the min and max of each value) when it spans several (rollup.read)."""
    with db.get_engine().connect() as c:  # one transaction: the run's length and its rows agree
        last = c.execute(select(Run.last_iteration).where(Run.id == run_id)).scalar()
        stored = 0 if last is None else last + 1
        level = rollup.level_for(stored) if every is None else rollup.level_of(every)
        rows = rollup.read(c, run_id, level, since_iteration)
    return {"every": rollup.BASE**level, "stored": stored, "rows": rows}


def history(rows: list[dict], every: int) -> dict:
    """The step x iteration view from curve rows: per row (a bin of `every` iterations) and branch
    step, averaged over prompts and the bin's iterations: mean |mixed advantage| (where in the
    denoising trajectory the learning signal sits), the reward's std across the group at the
    finest granularity (how much reward the noise injected at k moves) and the granularities'
    agreement; and per reward model and verifier component the members' variance at the finest
    granularity (`variance`, one {name: [per step]} per row). `iterations` are the bins' first iterations."""
    rows = [row for row in rows if row.get("attribution")]
    steps = sorted({k for row in rows for per_step in row["attribution"].values() for k in per_step})
    out = {"iterations": [row["iteration"] for row in rows], "every": every, "branch_steps": steps}
    pick = itemgetter(*steps) if steps else None
    for value in HISTORY_VALUES:
        out[value] = [_per_step(row["attribution"].get(value) or {}, steps, pick) for row in rows]
    # per row, {reward or verifier: [members' variance per step]} (runs stored before it: {})
    out["variance"] = [{name: _per_step(per_step, steps, pick) for name, per_step in (row.get("variance") or {}).items()}
                       for row in rows]
    return out


def _per_step(values: dict, steps: list, pick) -> list:
    """values[k] for every k in steps (None where a row has no such step)."""
    if len(values) == len(steps):
        try:
            picked = pick(values)
            return list(picked) if len(steps) > 1 else [picked]
        except KeyError:
            pass
    return [values.get(k) for k in steps]


def attribution_history(run_id: int, since_iteration: int = -1, every: int | None = None) -> dict:
    """`history` of the run's curve rows after since_iteration (see `curves` for `every`)."""
    curve = curves(run_id, since_iteration, every)
    return history(curve["rows"], curve["every"])


def full_record(metric, arrays: Attribution | dict | None) -> dict:
    """The engine's record again, from a metrics row (its `record` JSON, `rewards` and scalar
    columns: a row or mapping) and its iteration's attributions row."""
    get = metric.get if isinstance(metric, dict) else lambda key: getattr(metric, key)
    record = {**get("record"), "reward": get("rewards")}
    for key in SCALARS:
        if get(key) is not None:  # a number in the record (a None stayed in its JSON)
            record[key] = get(key)
    if record.get("g2rpo") is not None and arrays is not None:
        record["g2rpo"] = {**record["g2rpo"], **attribution.arrays(arrays)}
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
        metric = s.execute(select(*RECORD).where(Metric.run_id == run_id, Metric.iteration == iteration)).first()
        arrays = s.get(Attribution, (run_id, iteration))
    if metric is None or arrays is None or metric.record.get("g2rpo") is None:
        return None
    record = full_record(metric, arrays)
    return {"iteration": iteration, "prompts": record["prompts"], "reward_names": list(record["reward"]), **record["g2rpo"]}


def attribution_window(run_id: int, last: int | None = None, window: int = 1) -> dict | None:
    """G²RPO's attribution over the `window` iterations ending at `last` (default: the latest), one
    cell per (iteration, prompt, branch step k): advantages [reward model][λ][member], mixed_advantage
    [member], reward_std (the std over members of the weighted reward at the finest granularity),
    variance {reward model or verifier component: the members' variance at the finest granularity};
    with the labels of iteration `last`'s record. None before any. Reads one blob per iteration."""
    with db.session() as s:
        if last is None:
            last = s.scalar(select(func.max(Attribution.iteration)).where(Attribution.run_id == run_id))
            if last is None:
                return None
        metric = s.execute(select(*RECORD).where(Metric.run_id == run_id, Metric.iteration == last)).first()
        config = s.scalar(select(Run.config).where(Run.id == run_id)) or {}
        stored = s.scalars(select(Attribution).where(Attribution.run_id == run_id, Attribution.iteration <= last,
                                                     Attribution.iteration > last - max(1, window))
                           .order_by(Attribution.iteration)).all()
        stored = [(a.iteration, attribution.arrays(a)) for a in stored]
    if metric is None or not stored or metric.record.get("g2rpo") is None:
        return None
    g, names = metric.record["g2rpo"], list(metric.rewards)
    weights = {r["name"]: r.get("weight", 1.0) for r in config.get("rewards", [])}
    w = np.array([weights.get(name, 1.0) for name in names], dtype=np.float64)
    finest = g["granularities"].index(min(g["granularities"]))
    cells = []
    for it, a in stored:
        rewards = attribution.as_array(a["rewards"])  # [M, P, K, Λ, G]
        spread = attribution.reward_spread(rewards[:, :, :, finest], w)  # [P, K]
        members = {name: rewards[m, :, :, finest] for m, name in enumerate(names)}  # each [P, K, G]
        if a.get("components") is not None:
            components = attribution.as_array(a["components"])
            for c, name in enumerate(g.get("component_names") or []):
                members.setdefault(name, components[c])
        variance = {name: attribution.as_array(values).var(-1, ddof=1) for name, values in members.items()}
        for p in range(rewards.shape[1]):
            for i, k in enumerate(g["branch_steps"]):
                cells.append({"iteration": it, "prompt": p, "k": k,
                              "advantages": [m[p][i] for m in a["advantages"]],
                              "mixed_advantage": a["mixed_advantage"][p][i],
                              "reward_std": None if np.isnan(spread[p, i]) else float(spread[p, i]),
                              "variance": {name: None if np.isnan(v[p, i]) else float(v[p, i]) for name, v in variance.items()}})
    return {"first": stored[0][0], "last": last, "iterations": len(stored),
            "prompts": metric.record["prompts"], "reward_names": names, "branch_steps": g["branch_steps"],
            "granularities": g["granularities"], "merge_steps": g.get("merge_steps"), "cells": cells}


def sample_scores(run_id: int, iterations: list[int]) -> dict[int, dict]:
    """The sample images' scores stored with these iterations' records (at most 64 iterations: what
    one view of the samples grid shows): {iteration: {"sample_scores"?, "base_sample_scores"?}}."""
    wanted = sorted(set(iterations))[:64]
    with db.session() as s:
        rows = s.execute(select(Metric.iteration, Metric.record)
                         .where(Metric.run_id == run_id, Metric.iteration.in_(wanted))).all()
    keys = ("sample_scores", "base_sample_scores")
    return {it: {k: record[k] for k in keys if k in (record or {})} for it, record in rows}


def records(run_id: int) -> list[dict]:
    """Every stored iteration as the engine wrote it (export; the tests compare with records.jsonl)."""
    with db.session() as s:
        metrics = s.execute(select(Metric.iteration, *RECORD).where(Metric.run_id == run_id)
                            .order_by(Metric.iteration)).all()
        arrays = {a.iteration: a for a in s.scalars(select(Attribution).where(Attribution.run_id == run_id))}
    return [full_record(metric, arrays.get(metric.iteration)) for metric in metrics]


def _rows(model, run_id: int, order) -> list[dict]:
    with db.session() as s:
        return [row.model_dump() for row in s.scalars(select(model).where(model.run_id == run_id).order_by(*order))]


def samples(run_id: int, newest: int | None = None) -> list[dict]:
    """Sample images in drawing order; `path` is relative to the run folder. `newest`: only the
    newest that many (by the record that wrote them), what a gallery shows, and the base model's,
    which the Monitor's grid sets beside them (a long run's newest left them out: "base: –")."""
    if newest is None:
        return _rows(Sample, run_id, (Sample.trained, Sample.position))
    with db.session() as s:
        rows = list(s.scalars(select(Sample).where(Sample.run_id == run_id)
                              .order_by(Sample.iteration.desc(), Sample.trained.desc(), Sample.position).limit(newest)))
        rows += s.scalars(select(Sample).where(Sample.run_id == run_id, Sample.trained == 0,
                                               Sample.id.not_in([row.id for row in rows])))
        return sorted((row.model_dump() for row in rows), key=lambda r: (r["trained"], r["position"]))


def checkpoints(run_id: int, evaluated: bool = False) -> list[dict]:
    """The run's checkpoints in order. `evaluated`: only the latest and those the trainer
    evaluated (an evaluation after as many iterations trained), what the Monitor's warning reads."""
    if not evaluated:
        return _rows(Checkpoint, run_id, (Checkpoint.iteration,))
    trained = select(Evaluation.trained).where(Evaluation.run_id == run_id, Evaluation.trained.is_not(None))
    newest = select(func.max(Checkpoint.iteration)).where(Checkpoint.run_id == run_id).scalar_subquery()
    with db.session() as s:
        return [row.model_dump() for row in s.scalars(
            select(Checkpoint).where(Checkpoint.run_id == run_id,
                                     or_(Checkpoint.trained.in_(trained), Checkpoint.iteration == newest))
            .order_by(Checkpoint.iteration))]


def evaluations(run_id: int) -> list[dict]:
    """Held-out evaluations: the trainer's (by iterations trained; 0 is the base model), then any added later."""
    return _rows(Evaluation, run_id, (Evaluation.trained.is_(None), Evaluation.trained, Evaluation.id))


def run_summaries(run_ids: list[int], recent: int = 10) -> dict[int, dict]:
    """For the runs table, per run: the latest weighted reward, the mean seconds of its last
    `recent` iterations (for an ETA), the training rewards' names (`trained_on`) and the scores of
    the trainer's evaluations after training (`evaluated`, in training order), in three small
    queries whatever the number of runs."""
    if not run_ids:
        return {}
    with db.session() as s:
        latest = s.execute(select(Metric.run_id, Metric.reward, Metric.rewards).join(Run, Run.id == Metric.run_id)
                           .where(Metric.run_id.in_(run_ids), Metric.iteration == Run.last_iteration)).all()
        pace = s.execute(select(Metric.run_id, func.avg(Metric.seconds)).join(Run, Run.id == Metric.run_id)
                         .where(Metric.run_id.in_(run_ids), Metric.iteration > Run.last_iteration - recent)
                         .group_by(Metric.run_id)).all()
        evaluated = s.execute(select(Evaluation.run_id, Evaluation.scores)
                              .where(Evaluation.run_id.in_(run_ids), Evaluation.trained > 0)
                              .order_by(Evaluation.run_id, Evaluation.trained)).all()
    summaries = {run_id: {"reward": None, "seconds_per_iteration": None, "evaluated": [], "trained_on": []}
                 for run_id in run_ids}
    for run_id, scores in evaluated:
        summaries[run_id]["evaluated"].append(scores)
    for run_id, reward, rewards in latest:
        summaries[run_id]["reward"], summaries[run_id]["trained_on"] = reward, list(rewards or {})
    for run_id, seconds in pace:
        summaries[run_id]["seconds_per_iteration"] = seconds
    return summaries


def measured_rate(model: str, algorithm: str, runs: int = 3, recent: int = 20, quantile: float | None = None) -> dict | None:
    """Seconds per model evaluation on this machine over the last `recent` iterations of the newest
    `runs` runs of this model and algorithm ({"seconds_per_evaluation", "runs"}), or None: their
    total over their evaluations, or with `quantile` that quantile of the iterations' own rates
    (a low one is the machine alone: iterations slowed by other work sit above it)."""
    with db.session() as s:
        ids = s.scalars(select(Run.id).where(Run.model == model, Run.algorithm == algorithm,
                                             Run.last_iteration.is_not(None)).order_by(Run.id.desc()).limit(runs)).all()
        rows = [(spent, count) for run_id in ids
                for spent, count in s.execute(select(Metric.seconds, Metric.model_evaluations)
                                              .where(Metric.run_id == run_id)
                                              .order_by(Metric.iteration.desc()).limit(recent))
                if spent is not None and count]
    if not rows:
        return None
    if quantile is None:
        rate = sum(spent for spent, _ in rows) / sum(count for _, count in rows)
    else:
        rates = sorted(spent / count for spent, count in rows)
        rate = rates[min(len(rates) - 1, int(quantile * len(rates)))]
    return {"seconds_per_evaluation": rate, "runs": list(ids)}
