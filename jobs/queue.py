"""The job queue: SQLite by default (a file in the data folder, no server), Redis by URL so that
workers on several machines consume one queue. A message is just a run id; everything else about
the run is in the database, so a message never goes stale when a run is resumed with a new config.
"""
from __future__ import annotations

from huey import RedisHuey, SqliteHuey

from jobs import settings

TASK = "g2rpo.train"  # a stable name: renaming a task would orphan messages already queued
_queues: dict[tuple, tuple] = {}


def _train(run_id: int) -> None:
    from jobs import supervise  # the worker side only

    supervise.execute(run_id)


def _make():
    url, name = settings.queue_url(), settings.queue_name()
    if url is None:  # strict_fifo: SQLite must not reuse a deleted message's id (queue order)
        return SqliteHuey(name, filename=str(settings.data_dir() / "queue.db"), results=False, strict_fifo=True,
                          timeout=30)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url, results=False, blocking=True)  # BRPOP: no polling delay
    raise ValueError(f"G2RPO_QUEUE_URL: expected redis://host:port/db, got {url!r}")


def get():
    """(huey, task) for the current settings; cached, so env changes (tests) pick a new queue."""
    key = (settings.queue_url(), settings.queue_name(), str(settings.data_dir()))
    if key not in _queues:
        huey = _make()
        # Retries: if the database is unreachable when the job starts, try again rather than drop it
        # (a retry of a run already claimed is skipped, so nothing trains twice).
        _queues[key] = (huey, huey.task(name=TASK, retries=3, retry_delay=10)(_train))
    return _queues[key]


def enqueue(run_id: int) -> None:
    _huey, task = get()
    task(run_id)


def pending() -> int:
    """Messages waiting (queued runs no worker has taken yet)."""
    huey, _task = get()
    return huey.pending_count()
