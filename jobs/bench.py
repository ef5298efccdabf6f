"""How long the Monitor's reads take on a long run while a worker writes, today's against the old format's:

    python -m jobs.bench [--lengths 10000 100000] [--repeats 20] [--no-postgres]

For each length, stores one run of G²RPO iterations shaped like the paper's defaults (K=8 branch
steps, Λ=3 granularities, G=12 members, one prompt: 288 rewards and advantages per iteration)
twice: in the schema-0002 format (JSON member rows, jobs/legacy.py) and in today's (float32
member rows, curve buckets). Then, for each, starts a writer process that keeps appending
iterations one transaction each in that format (far faster than a real worker) and times, while
it writes:
  - first load: what a page opening on the run reads. Old: the run, every metrics row, the latest
    heatmap and the whole step x iteration history grouped from the member rows (the reads
    before 0003). New: jobs.view.poll on a new view (the run, the curve rows, the latest
    iteration, evaluations, the newest samples, the evaluated checkpoints) and the latest heatmap;
  - poll: what a live page reads each tick (the same, for what is new since the last one).
And the bytes stored per iteration. On SQLite (a temporary folder) and on PostgreSQL when
reachable (throwaway databases). With --migrate, the old-format run is then converted by the
0003 migration, timed.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack

from sqlalchemy import insert, text

from jobs import api, db, legacy, runs, view
from jobs.models import Run
from jobs.sink import insert_records
from jobs.testing import REPO, fake_config, fake_record, throwaway_postgres

BATCH = 500
TABLES = ("runs", "metrics", "attributions", "curve_layouts", "curve_buckets", "samples", "checkpoints", "evaluations")


def record(it: int) -> dict:
    return fake_record(it, checkpoint=(it + 1) % 10 == 0)


def old_engine(url: str):
    """An engine on an old-format database (migrated to 0002 only, never through jobs.db)."""
    engine = db.create(url)
    db.migrate(engine, legacy.REVISION)
    return engine


def store_both(iterations: int, old_url: str) -> tuple[int, int, float, float]:
    """The same run stored in both formats (each batch of records drawn once): (old id, new id, seconds each)."""
    config = fake_config(iterations=2 * iterations)  # a run still going (the writer adds more)
    engine = old_engine(old_url)
    with engine.begin() as c:
        old_id = c.execute(insert(Run).values(name="old", algorithm="g2rpo", model="builtin", config=config,
                                              iterations=2 * iterations, status="queued", cancel_requested=False,
                                              attempts=1).returning(Run.id)).scalar()
    new_id = runs.create(config)
    spent = [0.0, 0.0]
    for first in range(0, iterations, BATCH):
        batch = [record(it) for it in range(first, min(first + BATCH, iterations))]
        start = time.perf_counter()
        with engine.begin() as c:
            legacy.insert_records(c, old_id, batch, config)
        middle = time.perf_counter()
        with db.session() as s:
            insert_records(s, new_id, batch, config)
            s.commit()
        spent[0], spent[1] = spent[0] + middle - start, spent[1] + time.perf_counter() - middle
    engine.dispose()
    return old_id, new_id, *spent


def writer(kind: str, url: str, run_id: int, start: int, pause: float) -> None:
    """Append iterations until SIGTERM, one transaction each (as the training child does); print stats.
    (Not SIGINT: a shell's background job starts with SIGINT ignored, and Python then leaves it so.)"""
    config = fake_config()
    engine = old_engine(url) if kind == "old" else None
    latencies, it, stop = [], start, []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    try:
        while not stop:
            r = record(it)
            t = time.perf_counter()
            if engine is not None:
                with engine.begin() as c:
                    legacy.insert_records(c, run_id, [r], config)
            else:
                with db.session() as s:
                    insert_records(s, run_id, [r], config)
                    s.commit()
            latencies.append(time.perf_counter() - t)
            if it == start:  # the parent measures from here on: SIGTERM is handled, a write has landed
                print("writing", flush=True)
            it += 1
            time.sleep(pause)
    except KeyboardInterrupt:
        pass
    print(json.dumps({"written": len(latencies), "mean_ms": 1e3 * statistics.fmean(latencies or [0]),
                      "p95_ms": 1e3 * percentile(latencies, 95)}), flush=True)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))] if values else float("nan")


class Old:
    """The reads before 0003, on an old-format database."""

    def __init__(self, url: str, run_id: int):
        self.engine, self.run_id = old_engine(url), run_id

    def first_load(self):
        with self.engine.connect() as c:
            legacy.get_run(c, self.run_id)
            metrics = legacy.latest_metrics(c, self.run_id)
            legacy.heatmap(c, self.run_id)
            legacy.attribution_history(c, self.run_id)
        return metrics[-1]["iteration"]

    def poll(self, seen: int) -> int:
        with self.engine.connect() as c:
            legacy.get_run(c, self.run_id)
            new = legacy.latest_metrics(c, self.run_id, since_iteration=seen)
            legacy.heatmap(c, self.run_id)
            legacy.attribution_history(c, self.run_id, since_iteration=seen)
        return new[-1]["iteration"] if new else seen


class New:
    """Today's reads: a Monitor page's view (jobs.view) and the latest heatmap."""

    def __init__(self, run_id: int):
        self.run_id = run_id

    def first_load(self):
        page, _ = view.poll(None, self.run_id)
        api.heatmap(self.run_id)
        return page

    def poll(self, page):
        page, changed = view.poll(page, self.run_id)
        if changed:  # the tab redraws, the latest heatmap with it
            api.heatmap(self.run_id)
        return page


def timed(reader, repeats: int) -> tuple[list[float], list[float]]:
    """First loads, then polls every UI tick (shortened to 0.25 s), each timed."""
    loads = []
    for _ in range(repeats):
        t = time.perf_counter()
        reader.first_load()
        loads.append(time.perf_counter() - t)
    state, polls = reader.first_load(), []
    for _ in range(repeats):
        time.sleep(0.25)
        t = time.perf_counter()
        state = reader.poll(state)
        polls.append(time.perf_counter() - t)
    return loads, polls


def with_writer(kind: str, url: str, run_id: int, start: int, pause: float, measure) -> tuple:
    env = {**os.environ, "G2RPO_DATABASE_URL": url}
    proc = subprocess.Popen([sys.executable, "-m", "jobs.bench", "--writer", kind, "--url", url, "--run", str(run_id),
                             "--start", str(start), "--pause", str(pause)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        # Wait until it writes (a fixed sleep lost the race on a loaded machine: SIGTERM came before
        # the writer had its handler, and it died without its figures).
        if proc.stdout.readline().strip() != "writing":
            raise RuntimeError(f"the {kind}-format writer exited before writing (exit {proc.wait()})")
        result = measure()
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=120)[0]
    return result, json.loads(out.strip().splitlines()[-1])


def size(url: str) -> int:
    """Bytes of the database's tables (PostgreSQL: with indexes and TOAST) or of the SQLite file."""
    engine = db.create(url)
    try:
        with engine.connect() as c:
            if engine.dialect.name == "postgresql":
                return sum(c.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar() for t in TABLES
                           if c.execute(text(f"SELECT to_regclass('{t}')")).scalar())
            c.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        return os.path.getsize(engine.url.database)
    finally:
        engine.dispose()


def stored(url: str, run_id: int) -> int:
    engine = db.create(url)
    with engine.connect() as c:
        last = c.execute(text("SELECT last_iteration FROM runs WHERE id = :r"), {"r": run_id}).scalar()
    engine.dispose()
    return last + 1


def bench_length(iterations: int, old_url: str, new_url: str, args) -> dict:
    old_id, new_id, old_s, new_s = store_both(iterations, old_url)
    out = {"iterations": iterations, "insert_s": {"old": old_s, "new": new_s}}
    measure = {"old": lambda: timed(Old(old_url, old_id), args.repeats),
               "new": lambda: timed(New(new_id), args.repeats)}
    for kind, url, run_id in (("old", old_url, old_id), ("new", new_url, new_id)):
        (loads, polls), written = with_writer(kind, url, run_id, iterations, args.pause, measure[kind])
        n = stored(url, run_id)
        out[kind] = {"load": loads, "poll": polls, "writer": written, "stored": n, "bytes": size(url) / n}
    if args.migrate:
        engine = db.create(old_url)
        start = time.perf_counter()
        db.migrate(engine)
        out["migrate_s"] = time.perf_counter() - start
        engine.dispose()
    db.dispose_all()
    return out


def ms(values: list[float], how) -> float:
    return 1e3 * how(values)


def report(backend: str, r: dict) -> None:
    old, new = r["old"], r["new"]
    print(f"\n{backend}, {r['iterations']:,} iterations stored (old format in {r['insert_s']['old']:.0f} s, "
          f"today's in {r['insert_s']['new']:.0f} s; {old['stored']:,} and {new['stored']:,} when the reads ended)")
    print(f"  {'':<34}{'old (0002)':>22}{'today':>22}{'ratio':>9}")
    for name, key in (("first load, mean (p95)", "load"), ("poll, mean (p95)", "poll")):
        a, b = old[key], new[key]
        print(f"  {name:<34}{ms(a, statistics.fmean):9.1f} ms ({ms(a, lambda v: percentile(v, 95)):6.1f})"
              f"{ms(b, statistics.fmean):9.1f} ms ({ms(b, lambda v: percentile(v, 95)):6.1f})"
              f"{statistics.fmean(a) / statistics.fmean(b):8.1f}x")
    print(f"  {'writer, one iteration a transaction':<34}{old['writer']['mean_ms']:9.1f} ms ({old['writer']['p95_ms']:6.1f})"
          f"{new['writer']['mean_ms']:9.1f} ms ({new['writer']['p95_ms']:6.1f})")
    print(f"  {'bytes per iteration':<34}{old['bytes']:12,.0f}{new['bytes']:22,.0f}{old['bytes'] / new['bytes']:8.1f}x")
    if "migrate_s" in r:
        print(f"  migration 0003 of the old-format database: {r['migrate_s']:.1f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10_000, 100_000], help="iterations stored")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.02, help="writer's pause between iterations (s)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--migrate", action="store_true", help="then time migration 0003 of the old-format run")
    parser.add_argument("--writer", choices=("old", "new"), help=argparse.SUPPRESS)  # internal: the writer process
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("G2RPO_MAX_ITERATIONS", str(10 * max(args.lengths)))  # runs planned twice as long
    if args.writer is not None:
        writer(args.writer, args.url, args.run, args.start, args.pause)
        return 0

    print(f"Monitor read benchmark: G²RPO runs (K=8, Λ=3, G=12, one prompt) of {', '.join(f'{n:,}' for n in args.lengths)} "
          f"iterations, while a writer appends one every ~{args.pause * 1e3:.0f} ms; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the start")
    for n in args.lengths:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["G2RPO_DATA_DIR"] = tmp
            new_url = os.environ["G2RPO_DATABASE_URL"] = f"sqlite:///{tmp}/g2rpo.db"
            report("SQLite (WAL)", bench_length(n, f"sqlite:///{tmp}/old.db", new_url, args))
        if args.no_postgres:
            continue
        with ExitStack() as stack:
            old_url, new_url = stack.enter_context(throwaway_postgres()), stack.enter_context(throwaway_postgres())
            if old_url is None or new_url is None:
                print("\nPostgreSQL: not reachable, skipped")
                continue
            os.environ["G2RPO_DATABASE_URL"] = new_url
            report("PostgreSQL", bench_length(n, old_url, new_url, args))
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
