"""Engine records into the database.

`RunSink` is what the training child hands the trainer: each iteration's record becomes one row of
metrics (with its curve values), for G²RPO one row of member arrays (jobs/attribution.py), its
sample and checkpoint paths, and its fold into the curve buckets (jobs/rollup.py), all in one
transaction, and a line of the run folder's records.jsonl. (`queries.full_record` turns the rows
back into the record.)
"""
from __future__ import annotations

import math
import os
import signal
from contextlib import contextmanager

from sqlalchemy import delete, func, insert, select, update

from jobs import attribution, db, progress_log, rollup, settings
from jobs.models import Attribution, Checkpoint, Evaluation, Metric, Run, Sample

SCALARS = ("loss", "ratio_mean", "ratio_min", "ratio_max", "clip_fraction", "approx_kl", "grad_norm")
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


def stored_record(record: dict) -> dict:
    """What Metric.record keeps of a (finite) record: not what has a column of its own (the
    reward statistics, the scalars where they are numbers) nor g2rpo's arrays (attributions), so
    nothing is stored twice. `queries.full_record` puts them back."""
    rest = {k: v for k, v in record.items() if k not in ("g2rpo", "reward") and not (k in SCALARS and v is not None)}
    if record.get("g2rpo") is not None:  # keep branch_steps / granularities in the record, move the arrays out
        rest["g2rpo"] = {k: v for k, v in record["g2rpo"].items() if k not in (*attribution.ARRAYS, "components")}
    return rest


def rows_for(run_id: int, record: dict, config: dict) -> tuple[dict[type, list[dict]], dict]:
    """The rows of one record, per table (plain dicts: bulk inserts), and its curve values by path."""
    record = finite(record)
    it = record["iteration"]
    weights = {r["name"]: r["weight"] for r in config["rewards"]}
    rest = stored_record(record)
    g = record.get("g2rpo")
    rewards = record["reward"]
    total = sum(weights.get(name, 1.0) * (math.nan if v["mean"] is None else v["mean"]) for name, v in rewards.items())
    metric = dict(run_id=run_id, iteration=it, reward=finite(total), rewards=rewards, record=rest,
                  seconds=record["time"]["total"], model_evaluations=sum(record["model_evaluations"].values()),
                  **{k: record.get(k) for k in SCALARS})
    rows = {table: [] for table in PER_ITERATION}
    rows[Metric].append(metric)
    steps = variance = None
    if g is not None:
        rows[Attribution].append(attribution.row(run_id, it, g))
        steps = attribution.summary(g, [weights.get(name, 1.0) for name in rewards])
        variance = {name: v.tolist() for name, v in attribution.variances(g, list(rewards)).items()}
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
    return rows, rollup.values(record, metric["reward"], steps and {k: v.tolist() for k, v in steps.items()}, variance)


def insert_records(session, run_id: int, records: list[dict], config: dict) -> None:
    """Insert records' rows (ascending iterations), fold them into the curve buckets and move the
    run's progress marker, in the caller's transaction."""
    tables: dict[type, list[dict]] = {table: [] for table in PER_ITERATION}
    curves = []
    for record in records:
        rows, values = rows_for(run_id, record, config)
        for table, table_rows in rows.items():
            tables[table] += table_rows
        curves.append(values)
    names = rollup.layout(session, run_id, curves)
    matrix = rollup.encode(names, curves)
    for metric, vector in zip(tables[Metric], matrix):
        metric["curve_values"] = vector.tobytes()
    for table, rows in tables.items():
        if rows:
            session.execute(insert(table), rows)
    rollup.fold(session, run_id, [r["iteration"] for r in records], matrix)
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
    rollup.truncate(session, run_id, start_iteration)
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
    """The trainer's sink in a job: the database plus the run folder's records.jsonl; with `log`
    (the training child's print), the lines of jobs/progress_log.py for the run's log.txt."""

    def __init__(self, run_id: int, log=None):
        self.run_id = run_id
        with db.session() as s:
            self.config = s.get(Run, run_id).config
        self.jsonl = None
        self.log = log

    def begin(self, start_iteration: int) -> None:
        """Call once the trainer knows where it starts (after loading the checkpoint)."""
        from engine.training.records import JsonlSink  # torch: only the training child needs it

        self.jsonl = JsonlSink(settings.run_dir(self.run_id) / "records.jsonl", start_iteration)
        with db.session() as s:
            truncate(s, self.run_id, start_iteration)
            s.commit()

    def checkpoint(self, trained: int, path: str) -> None:
        """A checkpoint saved outside a record (on a cancel, engine/training/stopping.py), after `trained`
        iterations: stored as the record of iteration trained - 1 would have listed it, so a
        resume starts after it and nothing is redone."""
        with GUARD.held(), db.session() as s:
            s.execute(insert(Checkpoint), [dict(run_id=self.run_id, iteration=trained - 1, trained=trained, path=path)])
            s.execute(update(Run).where(Run.id == self.run_id).values(last_checkpoint=path))
            s.commit()
        if self.log:
            self.log(progress_log.cancel_checkpoint_line(trained, path))

    def write(self, record: dict) -> None:
        with GUARD.held():
            self.jsonl.write(record)
            with db.session() as s:
                insert_records(s, self.run_id, [record], self.config)
                s.commit()
        if self.log:  # once stored: the log never tells of an iteration the database lacks
            for line in progress_log.lines(record, self.config["train"]["iterations"]):
                self.log(line)

