"""Curves that stay one screen wide however long the run: values folded into buckets as they are stored.

Each stored iteration gives one vector of curve values: the metrics scalars, every other number of
the record (KL, policy movement, the phases' seconds...), each reward model's mean and std and, for
G²RPO, the per-step attribution summary (jobs/attribution.py). Its order is the run's layout
(`CurveLayout.names`: one path into a curve row per value, appended to when a record brings a new
one). The vector is kept on the iteration's metrics row as float32 and folded, in the same
transaction, into one bucket per level: level L covers BASE**L consecutive iterations from a
multiple of that size and keeps, per value, the count of finite values, their sum, min and max.

A read takes the finest level with at most MAX_POINTS buckets for the run's length: the first load
of a 100,000-iteration run reads 391 buckets, not 100,000 rows, and a spike stays visible as its
bucket's max. Sums run in iteration order from the float32 values, so a bucket is the same
whether its iterations were stored one by one, in a batch, by a migration or again after a resume.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from sqlalchemy import and_, bindparam, case, delete, insert, or_, select, update

from jobs.attribution import as_lists
from jobs.models import CurveBucket, CurveLayout, Metric

BASE = 4  # each level's buckets are this many times wider than the one below
LEVELS = 8  # stored levels 1..8: the widest bucket holds 65,536 iterations
MAX_POINTS = 1000  # a curve never has more points than a screen has pixels
COLUMNS = ("reward", "loss", "ratio_mean", "ratio_min", "ratio_max", "clip_fraction", "approx_kl", "grad_norm",
           "seconds", "model_evaluations")  # a metrics row's scalars: top-level keys of a curve row
TOTALS = ("seconds", "model_evaluations")  # summed over a bucket (cumulative axes add up), not averaged
VALUE = np.dtype("<f4")  # a metrics row's curve values
STATS = np.dtype("<f8")  # a bucket's [count, sum, min, max] x values, in memory
# Stored: count, min and max as float32 (exact: counts below 2**24, extremes of float32 values),
# then the sums as float64: 20 bytes a value.
SMALL, SUM = np.dtype("<f4"), np.dtype("<f8")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def values(record: dict, reward: float | None, steps: dict[str, list] | None = None,
           variance: dict[str, list] | None = None) -> dict[tuple, float | None]:
    """One (finite) record's curve values by path. `reward`: the weighted total; `steps`: the
    attribution summary per branch step, {value: [one per record's branch step]}; `variance`: the
    members' variance per reward and verifier component and branch step, {name: [one per step]}."""
    out = {("reward",): reward, ("seconds",): record["time"]["total"],
           ("model_evaluations",): sum(record["model_evaluations"].values())}
    for key, value in record.items():
        if key in COLUMNS and (key,) not in out:
            out[(key,)] = value  # None where it was not finite
        elif key != "iteration" and _number(value):
            out[("record", key)] = value
    for phase, value in (record.get("time") or {}).items():
        if _number(value):
            out[("record", "time", phase)] = value
    for name, stats in record["reward"].items():
        for key in ("mean", "std"):
            out[("rewards", name, key)] = stats.get(key)
    for key, per_step in (steps or {}).items():
        for k, value in zip(record["g2rpo"]["branch_steps"], per_step):
            out[("attribution", key, k)] = value
    for name, per_step in (variance or {}).items():
        for k, value in zip(record["g2rpo"]["branch_steps"], per_step):
            out[("variance", name, k)] = value
    return out


def layout(connection, run_id: int, batch: list[dict]) -> list[tuple]:
    """The run's layout, extended (and stored) with any path of `batch` it does not have yet.
    (Core statements: `connection` is a Session or a Connection, as in a migration.)"""
    stored = connection.execute(select(CurveLayout.names).where(CurveLayout.run_id == run_id)).scalar()
    names = [tuple(name) for name in stored] if stored is not None else []
    known = set(names)
    new = [path for values_ in batch for path in values_ if path not in known and not known.add(path)]
    if new:
        names += new
        if stored is not None:
            connection.execute(update(CurveLayout).where(CurveLayout.run_id == run_id)
                               .values(names=[list(n) for n in names]))
        else:
            connection.execute(insert(CurveLayout), [{"run_id": run_id, "names": [list(n) for n in names]}])
    return names


def encode(names: list[tuple], batch: list[dict]) -> np.ndarray:
    """[records, values] float32 (NaN where a record has no such value, or a non-finite one)."""
    index = {name: i for i, name in enumerate(names)}
    out = np.full((len(batch), len(names)), np.nan, dtype=VALUE)
    for r, values_ in enumerate(batch):
        for path, value in values_.items():
            if value is not None:
                out[r, index[path]] = value
    return out


def _pad(stats: np.ndarray, width: int) -> np.ndarray:
    """Stats of an older, shorter layout widened: no value (count 0) in the new columns."""
    if stats.shape[1] == width:
        return stats
    extra = np.zeros((4, width - stats.shape[1]), dtype=STATS)
    extra[2:] = np.nan
    return np.concatenate([stats, extra], 1)


def _fold(stats: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
    """`stats` ([4, values] or None) with rows [n, values] added in order."""
    rows = rows.astype(STATS)
    width = rows.shape[1]
    stats = _pad(stats, width) if stats is not None else _pad(np.zeros((4, 0), STATS), width)
    known = np.isfinite(rows)
    total = np.cumsum(np.vstack([stats[1:2], np.where(known, rows, 0.0)]), 0)[-1]  # sequential: order fixed
    low = np.fmin(stats[2], np.where(known, rows, np.inf).min(0))
    high = np.fmax(stats[3], np.where(known, rows, -np.inf).max(0))
    count = stats[0] + known.sum(0)
    empty = count == 0
    low[empty], high[empty] = np.nan, np.nan
    return np.stack([count, total, low, high])


def _encode(stats: np.ndarray) -> bytes:
    return stats[[0, 2, 3]].astype(SMALL).tobytes() + stats[1].astype(SUM).tobytes()


def _decode(blob: bytes) -> np.ndarray:
    width = len(blob) // (3 * SMALL.itemsize + SUM.itemsize)
    count, low, high = np.frombuffer(blob, SMALL, 3 * width).reshape(3, width).astype(STATS)
    return np.stack([count, np.frombuffer(blob, SUM, width, 3 * width * SMALL.itemsize), low, high])


def _decode_all(blobs: list[bytes], width: int) -> np.ndarray:
    """Many buckets' stats at once, [buckets, 4, width] (older, shorter layouts padded)."""
    if len({len(blob) for blob in blobs}) != 1:
        return np.stack([_pad(_decode(blob), width) for blob in blobs])
    n = len(blobs[0]) // (3 * SMALL.itemsize + SUM.itemsize)
    raw = np.frombuffer(b"".join(blobs), np.uint8).reshape(len(blobs), -1)
    small = raw[:, :3 * n * SMALL.itemsize].copy().view(SMALL).reshape(len(blobs), 3, n).astype(STATS)
    sums = raw[:, 3 * n * SMALL.itemsize:].copy().view(SUM)
    stats = np.stack([small[:, 0], sums, small[:, 1], small[:, 2]], 1)
    if n < width:
        stats = np.stack([_pad(one, width) for one in stats])
    return stats


def fold(connection, run_id: int, iterations: list[int], matrix: np.ndarray) -> None:
    """Fold stored iterations (ascending, with their curve values [records, values]) into every level."""
    its = np.asarray(iterations)
    wanted = {level: sorted(set((its // BASE**level * BASE**level).tolist())) for level in range(1, LEVELS + 1)}
    existing = {(b.level, b.start): b for b in connection.execute(
        select(CurveBucket.level, CurveBucket.start, CurveBucket.iterations, CurveBucket.stats).where(
            CurveBucket.run_id == run_id,
            or_(*(and_(CurveBucket.level == level, CurveBucket.start.in_(starts)) for level, starts in wanted.items()))))}
    new, changed = [], []
    for level, starts in wanted.items():
        size = BASE**level
        for start in starts:
            inside = (its >= start) & (its < start + size)
            old = existing.get((level, start))
            row = dict(run_id=run_id, level=level, start=start, last=int(its[inside].max()),
                       iterations=(old.iterations if old else 0) + int(inside.sum()),
                       stats=_encode(_fold(_decode(old.stats) if old else None, matrix[inside])))
            (changed if old else new).append(row)
    if changed:  # in place (PostgreSQL: a HOT update, no index touched), not a delete and an insert
        t, key = CurveBucket.__table__, lambda name: bindparam(f"b_{name}")  # noqa: E731  (not the columns' names)
        connection.execute(update(t).where(t.c.run_id == key("run_id"), t.c.level == key("level"), t.c.start == key("start"))
                           .values(last=key("last"), iterations=key("iterations"), stats=key("stats")),
                           [{f"b_{name}": value for name, value in row.items()} for row in changed])
    if new:
        connection.execute(insert(CurveBucket), new)


def _size(level):
    """A bucket's size in SQL, BASE ** level (a CASE: SQLite has no power function by default)."""
    return case({level_: BASE**level_ for level_ in range(1, LEVELS + 1)}, value=level, else_=BASE**LEVELS)


def truncate(connection, run_id: int, start_iteration: int) -> None:
    """Forget iterations >= start_iteration from the buckets (the metrics rows are already gone):
    every bucket reaching them is dropped, and one holding earlier iterations too is folded again
    from those iterations' stored values."""
    connection.execute(delete(CurveBucket).where(CurveBucket.run_id == run_id,
                                                 CurveBucket.start + _size(CurveBucket.level) > start_iteration)
                       .execution_options(synchronize_session=False))
    first = start_iteration // BASE**LEVELS * BASE**LEVELS  # the widest partial bucket's start
    kept = connection.execute(select(Metric.iteration, Metric.curve_values)
                           .where(Metric.run_id == run_id, Metric.iteration >= first,
                                  Metric.iteration < start_iteration, Metric.curve_values.is_not(None))
                           .order_by(Metric.iteration)).all()
    if kept:
        names = layout(connection, run_id, [])
        matrix = np.stack([_widen(np.frombuffer(v, VALUE), len(names)) for _, v in kept])
        its = np.array([it for it, _ in kept])
        rows = []
        for level in range(1, LEVELS + 1):
            start = start_iteration // BASE**level * BASE**level
            inside = its >= start
            if inside.any():
                rows.append(dict(run_id=run_id, level=level, start=start, last=int(its[inside].max()),
                                 iterations=int(inside.sum()), stats=_encode(_fold(None, matrix[inside]))))
        if rows:
            connection.execute(insert(CurveBucket), rows)


def _widen(vector: np.ndarray, width: int) -> np.ndarray:
    """A curve-values vector of an older, shorter layout, NaN-padded to `width`."""
    return vector if len(vector) == width else np.concatenate([vector, np.full(width - len(vector), np.nan, VALUE)])


def level_for(stored: int) -> int:
    """The finest level that draws `stored` iterations in at most MAX_POINTS points."""
    for level in range(LEVELS + 1):
        if math.ceil(stored / BASE**level) <= MAX_POINTS:
            return level
    return LEVELS


def level_of(every: int) -> int:
    """The level whose buckets are `every` iterations wide (ValueError if none is)."""
    for level in range(LEVELS + 1):
        if BASE**level == every:
            return level
    raise ValueError(f"every must be one of {[BASE**level for level in range(LEVELS + 1)]}, not {every!r}")


@functools.lru_cache(maxsize=64)
def _builder(names: tuple[tuple, ...]):
    """A function from a flat list of values to a curve row's nested dict (paths -> keys), compiled
    once per layout: a dict display runs ~10x faster than building the nesting value by value.
    The keys are the layout's strings and ints, written with repr (a literal, never code)."""
    tree: dict = {}
    for i, path in enumerate(names):
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = i

    def display(node: dict) -> str:
        for key in node:
            if type(key) not in (str, int):
                raise TypeError(f"a curve path holds {key!r}: only strings and ints")
        return "{" + ", ".join(f"{key!r}: " + (f"f[{i}]" if type(i) is int else display(i))
                               for key, i in node.items()) + "}"

    return eval(f"lambda f: {display(tree)}", {})  # noqa: S307  (see the docstring)


def read(connection, run_id: int, level: int, since_iteration: int = -1) -> list[dict]:
    """Curve rows of `level` whose first iteration is > since_iteration, in order: each row has
    the keys of a metrics row (means over its iterations; `seconds` and `model_evaluations`
    summed), `record` (kl, time per phase...), `rewards` {name: {mean, std}}, `attribution`
    {value: {k: mean}} and `variance` {reward or verifier: {k: mean}} for G²RPO, `iteration` (its first), `last` and `count` (iterations in it),
    and for level >= 1 `low` and `high`: the same keys holding the min and max over its iterations."""
    stored = connection.execute(select(CurveLayout.names).where(CurveLayout.run_id == run_id)).scalar()
    if stored is None:
        return []
    names = [tuple(name) for name in stored]
    width = len(names)
    if level == 0:
        got = connection.execute(select(Metric.iteration, Metric.curve_values)
                                 .where(Metric.run_id == run_id, Metric.iteration > since_iteration,
                                        Metric.curve_values.is_not(None)).order_by(Metric.iteration)).all()
        if not got:
            return []
        heads = [(it, it, 1) for it, _ in got]
        values_ = np.stack([_widen(np.frombuffer(v, VALUE), width) for _, v in got]).astype(STATS)
        stats = None
    else:
        got = connection.execute(select(CurveBucket.start, CurveBucket.last, CurveBucket.iterations, CurveBucket.stats)
                                 .where(CurveBucket.run_id == run_id, CurveBucket.level == level,
                                        CurveBucket.start > since_iteration).order_by(CurveBucket.start)).all()
        if not got:
            return []
        heads = [(start, last, count) for start, last, count, _ in got]
        stats = _decode_all([blob for *_, blob in got], width)  # [buckets, 4, values]
        count, total = stats[:, 0], stats[:, 1]
        means = np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)
        summed = np.array([name in {(t,) for t in TOTALS} for name in names])
        values_ = np.where(summed, np.where(count > 0, total, np.nan), means)
    build, counted = _builder(tuple(names)), names.index(("model_evaluations",)) if ("model_evaluations",) in names else None
    flats = as_lists(values_)
    if counted is not None:  # a count: an int, as in a metrics row
        for flat in flats:
            flat[counted] = None if flat[counted] is None else round(flat[counted])
    rows = [{"iteration": start, "last": last, "count": count, **build(flat)}
            for (start, last, count), flat in zip(heads, flats)]
    if stats is not None:
        for row, low, high in zip(rows, as_lists(stats[:, 2]), as_lists(stats[:, 3])):
            row["low"], row["high"] = build(low), build(high)
    return rows
