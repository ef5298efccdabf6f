"""The storage format of schema revisions 0001-0002, frozen: G²RPO's member arrays as JSON, one
attributions row per (iteration, prompt, branch step) with its statistics, no curve values, no
buckets; and the reads that went with it: every metrics row with its whole JSON record for the
curves, the step x iteration history grouped from the member rows at read time.

Kept for three readers: the migration to 0003 (jobs/migrations/versions/0003_*) reads old
databases with `old_records` (and its downgrade writes them again with `insert_records`); the
migration test writes old-format runs to convert; and `python -m jobs.bench` times these reads
against today's on the same shape of run. Everything takes an explicit connection: an old-format
database is never opened through jobs.db, which would migrate it.
"""
from __future__ import annotations

import math
import statistics
from itertools import combinations, groupby

from sqlalchemy import (JSON, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, Table, func, insert,
                        select, update)

from jobs.models import Checkpoint, Evaluation, Run, Sample, utcnow  # tables the 0003 migration left alone

REVISION = "0002"
RUN_COLUMNS = [c for c in Run.__table__.c if c.name not in ("notes", "tags", "estimate", "resumed_at", "active_seconds")]  # the runs table of 0002 (0004-0006 added these)
HISTORY_VALUES = ("abs_advantage", "reward_std", "agreement")
HISTORY_COLUMNS = 500
SCALARS = ("loss", "ratio_mean", "ratio_min", "ratio_max", "clip_fraction", "approx_kl", "grad_norm")
ARRAYS = ("rewards", "advantages", "mixed_advantage")
CURVES = ("iteration", "created_at", "reward", "loss", "ratio_mean", "ratio_min", "ratio_max", "clip_fraction",
          "approx_kl", "grad_norm", "seconds", "model_evaluations", "rewards", "record")

metadata = MetaData()


def _run_id():
    return Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)


metrics = Table("metrics", metadata, _run_id(), Column("iteration", Integer, primary_key=True),
                Column("created_at", DateTime, nullable=False, default=utcnow),
                *(Column(name, Float) for name in ("reward", *SCALARS)), Column("seconds", Float, nullable=False),
                Column("model_evaluations", Integer, nullable=False), Column("rewards", JSON, nullable=False),
                Column("record", JSON, nullable=False))
attributions = Table("attributions", metadata, _run_id(), Column("iteration", Integer, primary_key=True),
                     Column("prompt", Integer, primary_key=True), Column("k", Integer, primary_key=True),
                     *(Column(name, JSON, nullable=False) for name in ARRAYS),
                     *(Column(name, Float) for name in HISTORY_VALUES),
                     Index("ix_attributions_history", "run_id", "iteration", "k", "abs_advantage"))
Table("runs", metadata, Column("id", Integer, primary_key=True))  # for the foreign keys


# ------------------------------------------------------------------ the old writer

def finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


def _known(values) -> list[float]:
    return [v for v in values if v is not None]


def reward_spread(rewards: list, weights: list[float], finest: int) -> float | None:
    members = zip(*(row[finest] for row in rewards))
    totals = [sum(w * r for w, r in zip(weights, member)) for member in members if None not in member]
    return statistics.stdev(totals) if len(totals) >= 2 else None


def granularity_agreement(advantages: list) -> float | None:
    correlations = []
    for per_lambda in advantages:
        for a, b in combinations(per_lambda, 2):
            pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
            if len(pairs) >= 2:
                try:
                    correlations.append(statistics.correlation(*zip(*pairs)))
                except statistics.StatisticsError:
                    pass
    return sum(correlations) / len(correlations) if correlations else None


def rows_for(run_id: int, record: dict, config: dict) -> dict:
    """The old rows of one record: {"metrics": [...], "attributions": [...], Sample: ..., Checkpoint: ..., Evaluation: ...}."""
    record = finite(record)
    it = record["iteration"]
    weights = {r["name"]: r["weight"] for r in config["rewards"]}
    rest = {k: v for k, v in record.items() if k != "g2rpo"}
    g = record.get("g2rpo")
    if g is not None:
        rest["g2rpo"] = {k: v for k, v in g.items() if k not in ARRAYS}
    rewards = record["reward"]
    total = sum(weights.get(name, 1.0) * (math.nan if v["mean"] is None else v["mean"]) for name, v in rewards.items())
    rows = {metrics: [dict(run_id=run_id, iteration=it, reward=finite(total), rewards=rewards, record=rest,
                           seconds=record["time"]["total"], model_evaluations=sum(record["model_evaluations"].values()),
                           **{k: record.get(k) for k in SCALARS})],
            attributions: [], Sample: [], Checkpoint: [], Evaluation: []}
    if g is not None:
        reward_weights = [weights.get(name, 1.0) for name in rewards]
        finest = g["granularities"].index(min(g["granularities"]))
        for p in range(len(record["prompts"])):
            for i, k in enumerate(g["branch_steps"]):
                mixed = g["mixed_advantage"][p][i]
                known = [abs(a) for a in _known(mixed)]
                cell_rewards = [m[p][i] for m in g["rewards"]]
                cell_advantages = [m[p][i] for m in g["advantages"]]
                rows[attributions].append(dict(
                    run_id=run_id, iteration=it, prompt=p, k=k, mixed_advantage=mixed,
                    rewards=cell_rewards, advantages=cell_advantages,
                    abs_advantage=sum(known) / len(known) if known else None,
                    reward_std=reward_spread(cell_rewards, reward_weights, finest),
                    agreement=granularity_agreement(cell_advantages)))
    for key in ("base_evaluation", "evaluation"):
        if key in record:
            e = record[key]
            rows[Evaluation].append(dict(run_id=run_id, iteration=it, trained=e["trained"], checkpoint=None,
                                         prompts=e["prompts"], seeds=e["seeds"], scores=e["scores"]))
    prompts = config["sample_prompts"]
    for key, trained in (("base_samples", 0), ("samples", it + 1)):
        for i, path in enumerate(record.get(key, [])):
            rows[Sample].append(dict(run_id=run_id, iteration=it, trained=trained, position=i,
                                     prompt=prompts[i] if i < len(prompts) else "", path=path))
    if record.get("checkpoint"):
        rows[Checkpoint].append(dict(run_id=run_id, iteration=it, trained=it + 1, path=record["checkpoint"]))
    return rows


def insert_records(connection, run_id: int, records: list[dict], config: dict, only=None) -> None:
    """Insert records' old rows (`only`: just these tables) and move the run's progress marker."""
    tables: dict = {}
    for record in records:
        for table, rows in rows_for(run_id, record, config).items():
            tables.setdefault(table, []).extend(rows)
    for table, rows in tables.items():
        if rows and (only is None or table in only):
            connection.execute(insert(table), rows)
    if only is None:
        values = {"last_iteration": records[-1]["iteration"]}
        checkpoints = [r["checkpoint"] for r in records if r.get("checkpoint")]
        if checkpoints:
            values["last_checkpoint"] = checkpoints[-1]
        connection.execute(update(Run).where(Run.id == run_id).values(**values))


# ------------------------------------------------------------------ the old reads

def get_run(connection, run_id: int) -> dict:
    """What api.get_run read: the running runs (its interrupted-run check), the row, the checkpoint paths."""
    connection.execute(select(Run.id, Run.worker_host, Run.worker_pid, Run.heartbeat_at).where(Run.status == "running")).all()
    run = dict(connection.execute(select(*RUN_COLUMNS).where(Run.id == run_id)).mappings().one())
    run["checkpoints"] = list(connection.execute(select(Checkpoint.path).where(Checkpoint.run_id == run_id)
                                                 .order_by(Checkpoint.iteration)).scalars())
    return run


def latest_metrics(connection, run_id: int, since_iteration: int = -1) -> list[dict]:
    columns = [metrics.c[c] for c in CURVES]
    return [dict(row) for row in connection.execute(
        select(*columns).where(metrics.c.run_id == run_id, metrics.c.iteration > since_iteration)
        .order_by(metrics.c.iteration)).mappings()]


def full_record(metric_record: dict, cells: list) -> dict:
    """The engine's record from a metrics row's JSON and its iteration's attribution rows."""
    record = dict(metric_record)
    g = record.get("g2rpo")
    if g is not None and cells:
        by_cell = {(a.prompt, a.k): a for a in cells}
        grid = [[by_cell[p, k] for k in g["branch_steps"]] for p in range(len(record["prompts"]))]
        models = range(len(cells[0].rewards))
        record["g2rpo"] = {**g,
                           "rewards": [[[c.rewards[m] for c in row] for row in grid] for m in models],
                           "advantages": [[[c.advantages[m] for c in row] for row in grid] for m in models],
                           "mixed_advantage": [[c.mixed_advantage for c in row] for row in grid]}
    return record


def heatmap(connection, run_id: int, iteration: int | None = None) -> dict | None:
    a = attributions.c
    if iteration is None:
        iteration = connection.execute(select(func.max(a.iteration)).where(a.run_id == run_id)).scalar()
        if iteration is None:
            return None
    record = connection.execute(select(metrics.c.record).where(metrics.c.run_id == run_id,
                                                               metrics.c.iteration == iteration)).scalar()
    cells = connection.execute(select(attributions).where(a.run_id == run_id, a.iteration == iteration)).all()
    if record is None or not cells:
        return None
    g = full_record(record, list(cells))["g2rpo"]
    return {"iteration": iteration, "prompts": record["prompts"], "reward_names": list(record["reward"]), **g}


def attribution_history(connection, run_id: int, since_iteration: int = -1, every: int | None = None) -> dict:
    a = attributions.c
    if every is None:
        planned = connection.execute(select(Run.iterations).where(Run.id == run_id)).scalar() or 1
        every = max(1, math.ceil(planned / HISTORY_COLUMNS))
    start = (a.iteration // every) * every
    rows = connection.execute(select(start, a.k, *(func.avg(a[v]) for v in HISTORY_VALUES))
                              .where(a.run_id == run_id, a.iteration > since_iteration)
                              .group_by(start, a.k).order_by(start, a.k)).all()
    steps = sorted({row[1] for row in rows})
    history = {"iterations": [], "every": every, "branch_steps": steps, **{v: [] for v in HISTORY_VALUES}}
    for it, group in groupby(rows, key=lambda r: r[0]):
        by_k = {row[1]: row[2:] for row in group}
        history["iterations"].append(it)
        for j, value in enumerate(HISTORY_VALUES):
            history[value].append([by_k[k][j] if k in by_k else None for k in steps])
    return history


def old_records(connection, run_id: int, first: int = 0, last: int | None = None) -> list[dict]:
    """Stored iterations first..last (default: all) of a run as the engine wrote them (what the migration converts)."""
    m, a = metrics.c, attributions.c
    upto = (lambda column: column <= last) if last is not None else (lambda column: column.is_not(None))
    rows = connection.execute(select(m.iteration, m.record).where(m.run_id == run_id, m.iteration >= first,
                                                                  upto(m.iteration)).order_by(m.iteration)).all()
    cells = connection.execute(select(attributions).where(a.run_id == run_id, a.iteration >= first, upto(a.iteration))
                               .order_by(a.iteration)).all()
    by_iteration = {it: list(group) for it, group in groupby(cells, key=lambda c: c.iteration)}
    return [full_record(record, by_iteration.get(it, [])) for it, record in rows]


def records(connection, run_id: int) -> list[dict]:
    return old_records(connection, run_id)
