"""A worker that dies is noticed and replaced: the embedded worker is started again after kill -9
and trains a run submitted after the kill; restarts are bounded; a run submitted while no worker
is alive is told so, in the Launch message and the Monitor's status line."""
import os
import re
import signal
import sys
import time

from app import launch_tab, monitor
from app.embedded_worker import EmbeddedWorker, describe_exit
from jobs import api, heartbeat
from jobs.testing import SMALL, wait_for


def test_an_exit_is_named_by_its_signal_or_code():
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-signal.SIGTERM) == "killed by SIGTERM"
    assert describe_exit(3) == "exit code 3"


def test_a_worker_that_dies_on_every_start_is_restarted_a_bounded_number_of_times(monkeypatch):
    import app.embedded_worker as ew

    monkeypatch.setattr(ew, "POLL_S", 0.02)
    monkeypatch.setattr(ew, "RESTART_DELAY_S", 0.02)
    monkeypatch.setenv("G2RPO_WORKER_RESTARTS", "3")
    starts = []
    worker = EmbeddedWorker([sys.executable, "-c", "import sys; sys.exit(3)"])
    spawn = worker._spawn
    monkeypatch.setattr(worker, "_spawn", lambda: starts.append(1) or spawn())
    worker.start()
    wait_for(lambda: worker.gave_up, timeout=30, message="the watcher to give up")
    assert len(starts) == 1 + 3 and len(worker.restarts) == 3
    worker.stop()


def test_no_live_worker_is_said_at_submission_and_in_the_monitor(store):
    run_id = api.submit(None, SMALL + ["train.iterations=1"])
    message = launch_tab.queue_message(run_id)
    assert "no worker is alive" in message and f"#{run_id}" in message
    view, _ = monitor.poll(None, run_id)
    assert monitor.NO_WORKER in monitor.status_line(view)
    heartbeat.beat("test-worker")
    assert api.workers_alive() == 1
    assert "starts as soon as the worker picks it up" in launch_tab.queue_message(run_id)
    view, changed = monitor.poll(view, run_id)
    assert changed and monitor.NO_WORKER not in monitor.status_line(view)
    heartbeat.forget("test-worker")
    assert api.workers_alive() == 0


def _beating_pids() -> set[int]:
    from sqlmodel import select

    from jobs import db
    from jobs.models import WorkerBeat

    with db.session() as s:
        ids = [w.id for w in s.exec(select(WorkerBeat)).all()]
    return {int(re.match(r".*:(\d+):[0-9a-f]+$", i).group(1)) for i in ids}


def test_kill_9_of_the_embedded_worker_brings_a_new_one_that_trains_the_next_run(store, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the worker inherits the app's environment
    worker = EmbeddedWorker().start()
    try:
        first = worker.proc.pid
        wait_for(lambda: first in _beating_pids(), timeout=120, interval=0.5, message="the worker's first heartbeat")
        os.kill(first, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: worker.proc.pid != first and worker.proc.pid in _beating_pids(), timeout=90,
                 interval=0.5, message="a new worker's heartbeat")
        replaced_s = time.monotonic() - killed
        assert replaced_s < 60, replaced_s
        run_id = api.submit(None, SMALL + ["train.iterations=2"])
        assert api.wait(run_id, timeout=180) == "completed", api.get_run(run_id)["error"]
    finally:
        worker.stop()
    assert worker.proc.poll() is not None and not worker.gave_up
