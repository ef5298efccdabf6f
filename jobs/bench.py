"""How long the UI's heaviest read takes on a long run while a worker writes:

    python -m jobs.bench [--iterations 10000] [--repeats 30]

Stores a run of 10,000 G²RPO iterations shaped like the paper's defaults (K=8 branch steps, Λ=3
granularities, G=12 members: 8 attribution rows and 288 rewards per iteration), starts a writer
process that keeps appending iterations one transaction each (far faster than a real worker), and
times, while it writes:
  - first load: the run, all its metrics, the latest heatmap and the whole step x iteration history
    (what a page opening on the run reads);
  - poll: the same reads for the iterations since the last poll (what a live page reads each tick).
On SQLite (a temporary data folder) and on PostgreSQL when reachable (a throwaway database).
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

from sqlalchemy import text

from jobs import api, db, queries, runs
from jobs.sink import insert_records
from jobs.testing import REPO, fake_config, fake_record, throwaway_postgres


def store_run(iterations: int, batch: int = 500) -> tuple[int, float]:
    config = fake_config(iterations=2 * iterations)  # a run still going (the writer adds more)
    run_id = runs.create(config)
    start = time.perf_counter()
    for first in range(0, iterations, batch):
        with db.session() as s:
            insert_records(s, run_id, [fake_record(it, checkpoint=(it + 1) % 10 == 0)
                                       for it in range(first, min(first + batch, iterations))], config)
            s.commit()
    return run_id, time.perf_counter() - start


def writer(run_id: int, start: int, pause: float) -> None:
    """Append iterations until SIGINT, one transaction each (as the training child does); print stats."""
    config = fake_config()
    latencies, it = [], start
    try:
        while True:
            record = fake_record(it)
            t = time.perf_counter()
            with db.session() as s:
                insert_records(s, run_id, [record], config)
                s.commit()
            latencies.append(time.perf_counter() - t)
            it += 1
            time.sleep(pause)
    except KeyboardInterrupt:
        pass
    print(json.dumps({"written": len(latencies), "mean_ms": 1e3 * statistics.fmean(latencies or [0]),
                      "p95_ms": 1e3 * percentile(latencies, 95)}), flush=True)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))] if values else float("nan")


def first_load(run_id: int) -> int:
    api.get_run(run_id)
    metrics = queries.latest_metrics(run_id)
    queries.heatmap(run_id)
    queries.attribution_history(run_id)
    return metrics[-1]["iteration"]


def poll(run_id: int, seen: int) -> int:
    api.get_run(run_id)
    new = queries.latest_metrics(run_id, since_iteration=seen)
    queries.heatmap(run_id)
    queries.attribution_history(run_id, since_iteration=seen)
    return new[-1]["iteration"] if new else seen


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def bench(label: str, iterations: int, repeats: int, pause: float) -> dict:
    run_id, insert_s = store_run(iterations)
    env = {**os.environ}
    proc = subprocess.Popen([sys.executable, "-m", "jobs.bench", "--writer", str(run_id), "--start", str(iterations),
                             "--pause", str(pause)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)  # let it start writing
    loads = timed(lambda: first_load(run_id), repeats)
    seen = [first_load(run_id)]
    polls = []
    for _ in range(repeats):
        time.sleep(0.25)  # a UI timer tick, shortened
        t = time.perf_counter()
        seen.append(poll(run_id, seen[-1]))
        polls.append(time.perf_counter() - t)
    proc.send_signal(signal.SIGINT)
    written = json.loads(proc.communicate(timeout=60)[0].strip().splitlines()[-1])
    return {"backend": label, "insert_s": insert_s, "stored": queries.latest_metrics(run_id)[-1]["iteration"] + 1,
            "load": loads, "poll": polls, "writer": written, "size": database_size()}


def database_size() -> int:
    engine = db.get_engine()
    if engine.dialect.name == "postgresql":
        with engine.connect() as c:
            return c.execute(text("SELECT pg_database_size(current_database())")).scalar()
    path = engine.url.database
    return sum(os.path.getsize(path + suffix) for suffix in ("", "-wal") if os.path.exists(path + suffix))


def report(r: dict, iterations: int) -> None:
    ms = lambda xs, f: 1e3 * f(xs)  # noqa: E731
    print(f"\n{r['backend']}: stored {iterations} iterations in {r['insert_s']:.1f} s; "
          f"{r['stored']} when the reads ended")
    for name, key in (("first load (all metrics + heatmap + history)", "load"), ("poll (new iterations only)", "poll")):
        xs = r[key]
        print(f"  {name:<46} mean {ms(xs, statistics.fmean):7.1f} ms   "
              f"p95 {ms(xs, lambda v: percentile(v, 95)):7.1f} ms   ({len(xs)} reads)")
    w = r["writer"]
    print(f"  {'writer meanwhile (one iteration a transaction)':<46} mean {w['mean_ms']:7.1f} ms   "
          f"p95 {w['p95_ms']:7.1f} ms   ({w['written']} iterations written)")
    print(f"  database size: {r['size'] / 2**20:.0f} MiB")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--pause", type=float, default=0.02, help="writer's pause between iterations (s)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--writer", type=int, help=argparse.SUPPRESS)  # internal: the writer process
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.writer is not None:
        writer(args.writer, args.start, args.pause)
        return 0

    print(f"UI read benchmark: a run of {args.iterations} G²RPO iterations (K=8, Λ=3, G=12) while a writer "
          f"appends one every ~{args.pause * 1e3:.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["G2RPO_DATA_DIR"] = tmp
        os.environ.pop("G2RPO_DATABASE_URL", None)
        report(bench("SQLite (WAL)", args.iterations, args.repeats, args.pause), args.iterations)
        db.dispose_all()
        if args.no_postgres:
            return 0
        with throwaway_postgres() as url:
            if url is None:
                print("\nPostgreSQL: not reachable, skipped")
                return 0
            os.environ["G2RPO_DATABASE_URL"] = url
            report(bench("PostgreSQL", args.iterations, args.repeats, args.pause), args.iterations)
    return 0


if __name__ == "__main__":
    sys.exit(main())
