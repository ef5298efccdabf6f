"""Worker liveness: each worker writes a heartbeat row every BEAT_S seconds; the app reads them.

A worker that died (killed, out of memory, its machine gone) stops beating; after STALE_S without a
beat it no longer counts as alive, so the UI can say that queued runs are waiting for a worker
instead of promising they start "as soon as the worker picks them up". A worker that stops cleanly
removes its row. Rows of dead workers are pruned after a day.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from sqlmodel import delete, select

from jobs import db
from jobs.models import WorkerBeat, utcnow

BEAT_S = 5.0
STALE_S = 20.0  # four missed beats: a busy machine may delay one or two
PRUNE_AFTER = timedelta(days=1)
log = logging.getLogger("jobs.heartbeat")


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def beat(worker_id: str, slots: int = 1, device: str = "cpu", gpu_memory: int | None = None) -> None:
    with db.session() as s:
        row = s.get(WorkerBeat, worker_id)
        if row is None:
            s.add(WorkerBeat(id=worker_id, slots=slots, device=device, gpu_memory=gpu_memory))
        else:
            row.seen_at = utcnow()
            s.add(row)
        s.commit()


def forget(worker_id: str) -> None:
    with db.session() as s:
        s.exec(delete(WorkerBeat).where(WorkerBeat.id == worker_id))
        s.exec(delete(WorkerBeat).where(WorkerBeat.seen_at < utcnow() - PRUNE_AFTER))
        s.commit()


def alive(stale_s: float = STALE_S) -> list[WorkerBeat]:
    """The workers that beat within the last stale_s seconds."""
    with db.session() as s:
        return list(s.exec(select(WorkerBeat).where(WorkerBeat.seen_at >= utcnow() - timedelta(seconds=stale_s))).all())


def alive_slots(stale_s: float = STALE_S) -> int:
    """Job slots of the live workers (0: no worker is alive)."""
    return sum(r.slots for r in alive(stale_s))


def start(slots: int, stop: threading.Event) -> str:
    """Beat now and then every BEAT_S seconds from a daemon thread until `stop` is set; returns the id."""
    from jobs.devices import describe

    worker_id, (device, gpu_memory) = new_worker_id(), describe()
    beat(worker_id, slots, device, gpu_memory)

    def loop():
        while not stop.wait(BEAT_S):
            try:
                beat(worker_id, slots)
            except Exception as err:  # a database hiccup: the next beat retries; the watcher handles a lost one
                log.warning("heartbeat not written: %s", err)

    threading.Thread(target=loop, name="heartbeat", daemon=True).start()
    return worker_id
