"""Engine records into the database.

`RunSink` is what the training child hands the trainer: each iteration's record becomes one row of
metrics, one attribution row per (prompt, branch step) for G²RPO, its sample and checkpoint paths,
all in one transaction, and a line of the run folder's records.jsonl. (`queries.full_record` turns
the rows back into the record.)
"""
from __future__ import annotations

import math
import os
import signal
import statistics
from itertools import combinations
from contextlib import contextmanager

from sqlalchemy import delete, func, insert, select, update

from jobs import db, settings
from jobs.models import Attribution, Checkpoint, Evaluation, Metric, Run, Sample

SCALARS = ("loss", "ratio_mean", "ratio_min", "ratio_max", "clip_fraction", "approx_kl", "grad_norm")
ARRAYS = ("rewards", "advantages", "mixed_advantage")  # g2rpo's nested lists, stored in attributions
PER_ITERATION = (Metric, Attribution, Sample, Checkpoint, Evaluation)


def finite(value):
    """NaN and inf as None: PostgreSQL's JSON rejects them and SQLite turns NaN into NULL."""
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
    """Std over members of the weighted reward at granularity index `finest` (rewards [m][λ][member])."""
    members = zip(*(row[finest] for row in rewards))
    totals = [sum(w * r for w, r in zip(weights, member)) for member in members if None not in member]
    return statistics.stdev(totals) if len(totals) >= 2 else None


def granularity_agreement(advantages: list) -> float | None:
    """Mean Pearson correlation between the member advantages of every pair of granularities
    (advantages [m][λ][member]); None with one granularity or constant advantages."""
    correlations = []
    for per_lambda in advantages:
        for a, b in combinations(per_lambda, 2):
            pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
            if len(pairs) >= 2:
                try:
                    correlations.append(statistics.correlation(*zip(*pairs)))
                except statistics.StatisticsError:  # a constant vector: no correlation defined
                    pass
    return sum(correlations) / len(correlations) if correlations else None


def rows_for(run_id: int, record: dict, config: dict) -> dict[type, list[dict]]:
    """The rows of one record, per table (plain dicts: bulk inserts)."""
    record = finite(record)
    it = record["iteration"]
    weights = {r["name"]: r["weight"] for r in config["rewards"]}
    rest = {k: v for k, v in record.items() if k != "g2rpo"}
    g = record.get("g2rpo")
    if g is not None:  # keep branch_steps / granularities in the record, move the arrays out
        rest["g2rpo"] = {k: v for k, v in g.items() if k not in ARRAYS}
    rewards = record["reward"]
    total = sum(weights.get(name, 1.0) * (math.nan if v["mean"] is None else v["mean"]) for name, v in rewards.items())
    metric = dict(run_id=run_id, iteration=it, reward=finite(total), rewards=rewards, record=rest,
                  seconds=record["time"]["total"], model_evaluations=sum(record["model_evaluations"].values()),
                  **{k: record.get(k) for k in SCALARS})
    rows = {table: [] for table in PER_ITERATION}
    rows[Metric].append(metric)
    if g is not None:
        reward_weights = [weights.get(name, 1.0) for name in rewards]
        finest = g["granularities"].index(min(g["granularities"]))
        for p in range(len(record["prompts"])):
            for i, k in enumerate(g["branch_steps"]):
                mixed = g["mixed_advantage"][p][i]
                known = [abs(a) for a in _known(mixed)]
                cell_rewards = [m[p][i] for m in g["rewards"]]  # [reward model][λ][member]
                cell_advantages = [m[p][i] for m in g["advantages"]]
                rows[Attribution].append(dict(
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


def insert_records(session, run_id: int, records: list[dict], config: dict) -> None:
    """Insert records' rows and move the run's progress marker, in the caller's transaction."""
    tables: dict[type, list[dict]] = {table: [] for table in PER_ITERATION}
    for record in records:
        for table, rows in rows_for(run_id, record, config).items():
            tables[table] += rows
    for table, rows in tables.items():
        if rows:
            session.execute(insert(table), rows)
    last = records[-1]
    checkpoints = [r["checkpoint"] for r in records if r.get("checkpoint")]
    values = {"last_iteration": last["iteration"]}
    if checkpoints:
        values["last_checkpoint"] = checkpoints[-1]
    session.execute(update(Run).where(Run.id == run_id).values(**values))


def truncate(session, run_id: int, start_iteration: int) -> None:
    """Forget iterations >= start_iteration: a resumed run redoes them (never stored twice)."""
    for table in PER_ITERATION:
        session.execute(delete(table).where(table.run_id == run_id, table.iteration >= start_iteration))
    last = session.scalar(select(func.max(Metric.iteration)).where(Metric.run_id == run_id))
    checkpoint = session.scalar(select(Checkpoint.path).where(Checkpoint.run_id == run_id)
                                .order_by(Checkpoint.iteration.desc()).limit(1))
    session.execute(update(Run).where(Run.id == run_id).values(last_iteration=last, last_checkpoint=checkpoint))


class SignalGuard:
    """SIGTERM (a cancel) or SIGINT arriving while a record is written takes effect right after it,
    so the database and records.jsonl never disagree; at any other moment it kills at once.
    (A Python handler, not a signal mask: torch's threads would take a masked signal and die.
    SIGKILL, the worker's last resort, cannot be held: its cut transaction rolls back and a resume
    drops the extra jsonl line.)"""

    def __init__(self):
        self.writing, self.pending = False, None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.writing:
            self.pending = signum
        else:
            self._die(signum)

    @staticmethod
    def _die(signum):
        signal.signal(signum, signal.SIG_DFL)  # die by the signal itself: the worker sees which
        os.kill(os.getpid(), signum)

    @contextmanager
    def held(self):
        self.writing = True
        try:
            yield
        finally:
            self.writing = False
            if self.pending is not None:
                self._die(self.pending)


GUARD = SignalGuard()


class RunSink:
    """The trainer's sink in a job: the database plus the run folder's records.jsonl."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        with db.session() as s:
            self.config = s.get(Run, run_id).config
        self.jsonl = None

    def begin(self, start_iteration: int) -> None:
        """Call once the trainer knows where it starts (after loading the checkpoint)."""
        from engine.records import JsonlSink  # torch: only the training child needs it

        self.jsonl = JsonlSink(settings.run_dir(self.run_id) / "records.jsonl", start_iteration)
        with db.session() as s:
            truncate(s, self.run_id, start_iteration)
            s.commit()

    def checkpoint(self, trained: int, path: str) -> None:
        """A checkpoint saved outside a record (on a cancel, engine/stopping.py), after `trained`
        iterations: stored as the record of iteration trained - 1 would have listed it, so a
        resume starts after it and nothing is redone."""
        with GUARD.held(), db.session() as s:
            s.execute(insert(Checkpoint), [dict(run_id=self.run_id, iteration=trained - 1, trained=trained, path=path)])
            s.execute(update(Run).where(Run.id == self.run_id).values(last_checkpoint=path))
            s.commit()

    def write(self, record: dict) -> None:
        with GUARD.held():
            self.jsonl.write(record)
            with db.session() as s:
                insert_records(s, self.run_id, [record], self.config)
                s.commit()

