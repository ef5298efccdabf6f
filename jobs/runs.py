"""A run's life: queued -> running -> completed | failed | cancelled | interrupted -> (resume) queued.

Every transition is one conditional UPDATE (`... WHERE status = expected`), so a UI, a CLI and
several workers can race on a run without locks and exactly one of them wins.
"""
from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from jobs import db
from jobs.models import RESUMABLE, Run, utcnow

HOST = socket.gethostname()
STALE_AFTER = timedelta(seconds=60)  # a running run whose worker has not beaten for this long is dead


def create(config: dict, name: str = "", estimate: dict | None = None) -> int:
    run = Run(name=name, status="queued", algorithm=config["algorithm"]["name"], model=config["model"]["name"],
              config=config, iterations=config["train"]["iterations"], estimate=estimate)
    with db.session() as s:
        s.add(run)
        s.commit()
        return run.id


def get(run_id: int) -> Run | None:
    with db.session() as s:
        return s.get(Run, run_id)


def _transition(run_id: int, expected: tuple[str, ...], **values) -> bool:
    with db.session() as s:
        done = s.execute(update(Run).where(Run.id == run_id, Run.status.in_(expected)).values(**values)).rowcount
        s.commit()
    return done == 1


def claim(run_id: int) -> bool:
    """A worker takes a queued run; False if it was cancelled or deleted while waiting. A resumed
    run keeps its first start (started_at); resumed_at is this start."""
    now = utcnow()
    return _transition(run_id, ("queued",), status="running", started_at=func.coalesce(Run.started_at, now),
                       resumed_at=now, heartbeat_at=now, finished_at=None, error=None, cancel_requested=False,
                       worker_host=HOST, worker_pid=os.getpid(), child_pid=None, attempts=Run.attempts + 1)


def set_child(run_id: int, pid: int) -> None:
    _transition(run_id, ("running",), child_pid=pid)


def poll(run_id: int, beat: bool) -> str | None:
    """The supervising worker's check: refresh the heartbeat (if `beat`); then "cancel" if a cancel
    was asked (stop the child, letting it keep its last iteration), "gone" if the run was deleted
    or is no longer running (stop it at once: never train it twice), None to go on."""
    with db.session() as s:
        if beat:
            s.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=utcnow()))
            s.commit()
        row = s.execute(select(Run.status, Run.cancel_requested).where(Run.id == run_id)).first()
    if row is None or row.status != "running":
        return "gone"
    return "cancel" if row.cancel_requested else None


def finish(run_id: int, status: str, error: str | None = None, expected=("running",)) -> bool:
    if expected == ("running",):
        return _stop_running(run_id, status, utcnow(), error=error)
    return _transition(run_id, expected, status=status, error=error, finished_at=utcnow(), child_pid=None)


def _stop_running(run_id: int, status: str, now, until=None, **values) -> bool:
    """running -> `status` at `now`, adding the seconds since this start (up to `until`: the last
    heartbeat of a worker that died) to the run's active_seconds."""
    with db.session() as s:
        resumed = s.scalar(select(Run.resumed_at).where(Run.id == run_id))
    end = until or now
    seconds = max((end - resumed).total_seconds(), 0.0) if resumed is not None and end is not None else 0.0
    return _transition(run_id, ("running",), status=status, finished_at=now, child_pid=None,
                       active_seconds=Run.active_seconds + seconds, **values)


def duration(run: dict, now=None) -> float | None:
    """Seconds workers spent on the run over all its starts (the running one up to now); None if
    it never started."""
    if run.get("started_at") is None:
        return None
    seconds = run.get("active_seconds") or 0.0
    if run["status"] == "running" and run.get("resumed_at") is not None:
        seconds += max(((now or utcnow()) - run["resumed_at"]).total_seconds(), 0.0)
    return seconds


def cancel(run_id: int) -> str | None:
    """Cancel: a waiting or interrupted run at once; a running one is stopped by its worker within
    a second or so. Returns the status it is now in (or 'cancelling'), None if nothing to cancel."""
    if _transition(run_id, ("queued", "interrupted"), status="cancelled", finished_at=utcnow()):
        return "cancelled"  # a queued message for it is skipped when a worker dequeues it
    if _transition(run_id, ("running",), cancel_requested=True):
        return "cancelling"
    return None


def requeue(run_id: int, config: dict | None = None) -> bool:
    """Resume: back in the queue (the worker continues from the last checkpoint)."""
    values = dict(status="queued", cancel_requested=False, error=None, finished_at=None)
    if config is not None:
        values.update(config=config, iterations=config["train"]["iterations"])
    return _transition(run_id, RESUMABLE, **values)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed but not yet reaped process (zombie) is dead too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def mark_interrupted(starting_worker: bool = False) -> list[int]:
    """Running runs with no live worker become 'interrupted' (resumable; 'cancelled' if a cancel was
    waiting for that worker): their heartbeat is stale, or (on a worker's start) their worker was
    on this host and its process is gone, or had this very pid (a restarted container reuses pids)."""
    now = utcnow()
    with db.session() as s:
        running = s.execute(select(Run.id, Run.worker_host, Run.worker_pid, Run.heartbeat_at, Run.cancel_requested)
                            .where(Run.status == "running")).all()
    message = "the worker running it stopped (killed, crashed or restarted); resume it to continue"
    marked = []
    for run_id, host, pid, beat, cancel in running:
        stale = beat is None or now - beat > STALE_AFTER
        gone = starting_worker and host == HOST and (pid == os.getpid() or not pid_alive(pid))
        if (stale or gone) and _stop_running(run_id, "cancelled" if cancel else "interrupted", now, until=beat,
                                             error=None if cancel else message):
            marked.append(run_id)
    return marked
