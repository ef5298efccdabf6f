"""The body of a queued job, run by a worker thread: start the training child, watch it, stop it.

The child is forked from a fork server that imported torch and the engine once (a job starts in
a fraction of a second instead of re-importing for seconds) and becomes its own process group, so
a cancel kills it and anything it started, and its GPU memory is freed with it. A lifeline pipe
ties it to this worker: if the worker dies, even by SIGKILL, the child kills itself at once.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
import traceback

from jobs import runs, settings
from jobs.exits import ERROR_MARK, TRAINING_ERROR_EXIT

POLL_S = 0.5  # how often the worker looks for a cancel request
HEARTBEAT_S = 5.0  # how often it tells the database it is alive (runs.STALE_AFTER is far longer)
GRACE_S = 5.0  # SIGTERM, then SIGKILL after this long
CANCEL_GRACE_S = 20.0  # a cancel waits this long for the child to checkpoint its last iteration and exit
PRELOAD = ["jobs.child", "jobs.queue"]  # imported once in the fork server

log = logging.getLogger("jobs.worker")
stop_flag = threading.Event()  # the worker replaces it with the consumer's: set when it shuts down
free_gpus: queue.SimpleQueue = queue.SimpleQueue()  # one entry per worker thread; None: use what is visible
free_gpus.put(None)
active: set[int] = set()  # runs this worker is training now
_context = None


def context():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def warm_up() -> None:
    """Start the fork server now, so it imports torch while the worker waits for its first job."""
    from multiprocessing import forkserver

    context()
    forkserver.ensure_running()


def _child_entry(run_id: int, gpu: str | None, lifeline) -> None:
    from jobs import child  # already imported in the fork server

    child.main(run_id, gpu, lifeline)


def kill_group(proc) -> None:
    """SIGTERM the child's process group, SIGKILL what is left after GRACE_S."""
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, GRACE_S)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:  # not yet its own group (just forked) or already gone
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
        proc.join(wait)
        if proc.exitcode is not None:
            break
    try:  # grandchildren that outlived the leader
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_keeping_progress(proc) -> None:
    """A cancel: SIGUSR1 asks the trainer to stop with a checkpoint of its last completed iteration
    (engine/training/stopping.py; at once during a rollout, after the iteration during an update). What has
    not exited after CANCEL_GRACE_S, or when the worker shuts down, is killed as before."""
    try:
        os.kill(proc.pid, signal.SIGUSR1)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + CANCEL_GRACE_S
    while proc.exitcode is None and time.monotonic() < deadline and not stop_flag.is_set():
        proc.join(POLL_S)
    kill_group(proc)  # what is left of its process group (a child that exited leaves nothing)


def training_error(run_id: int) -> str | None:
    """The message a child that exited with TRAINING_ERROR_EXIT left at the end of its log."""
    lines = [line for line in log_tail(run_id).splitlines() if line.startswith(ERROR_MARK)]
    return lines[-1].removeprefix(ERROR_MARK) if lines else None


def log_tail(run_id: int, chars: int = 3000) -> str:
    path = settings.run_dir(run_id) / "log.txt"
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - chars))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def watch(run_id: int, proc) -> tuple[str, str | None]:
    """Wait for the child; stop it on cancel or worker shutdown. Returns (status, error)."""
    last_beat = time.monotonic()
    while True:
        proc.join(POLL_S)
        if proc.exitcode is not None:
            break
        if stop_flag.is_set():
            kill_group(proc)
            return "interrupted", "the worker was stopped; resume the run to continue"
        beat = time.monotonic() - last_beat >= HEARTBEAT_S
        try:
            stop = runs.poll(run_id, beat)
        except settings.StorageError as err:  # the database vanished or was replaced: stop, do not split
            kill_group(proc)
            return "interrupted", str(err)
        except Exception as err:  # a database hiccup must not kill hours of training
            log.warning("run %s: cannot reach the database (%s); still training", run_id, err)
            continue
        last_beat = time.monotonic() if beat else last_beat
        if stop == "cancel":
            stop_keeping_progress(proc)
            return "cancelled", None  # never "completed", even if it was at its last iteration
        if stop:
            kill_group(proc)
            return "cancelled", None
    if proc.exitcode == 0:
        return "completed", None
    if proc.exitcode == TRAINING_ERROR_EXIT and (message := training_error(run_id)):
        return "failed", message
    if proc.exitcode < 0:  # killed: it had no chance to write why, so its log's end would mislead
        return "failed", f"training process killed by {signal_name(-proc.exitcode)}"
    return "failed", f"training process exit code {proc.exitcode}; end of its log:\n{log_tail(run_id)}"


def signal_name(number: int) -> str:
    """'SIGKILL (out of memory, or kill -9)', 'SIGSEGV', or 'signal 40'."""
    try:
        name = signal.Signals(number).name
    except ValueError:  # a real-time signal has no name
        return f"signal {number}"
    return f"{name} (out of memory, or kill -9)" if number == signal.SIGKILL else name


def wait_idle(timeout: float) -> None:
    """After a shutdown: give running jobs time to stop their children and record 'interrupted'."""
    deadline = time.monotonic() + timeout
    while active and time.monotonic() < deadline:
        time.sleep(0.1)


def execute(run_id: int) -> None:
    """Run a queued run to its end (or its cancel). Once claimed, never raises: the outcome goes to
    the run. (A database error before that raises, and the queue retries the message.)"""
    if not runs.claim(run_id):
        log.info("run %s is no longer queued; skipped", run_id)
        return
    active.add(run_id)
    try:
        status, error = _train(run_id)
        if runs.finish(run_id, status, error):
            log.info("run %s: %s", run_id, status)
        else:  # deleted, or marked interrupted meanwhile
            log.info("run %s: %s, but it was no longer running in the database", run_id, status)
    except settings.StorageError as err:
        log.error("run %s: cannot record its end: %s", run_id, err)
    finally:
        active.discard(run_id)


def _train(run_id: int) -> tuple[str, str | None]:
    gpu = free_gpus.get()
    reader = writer = None
    try:
        reader, writer = context().Pipe(duplex=False)
        proc = context().Process(target=_child_entry, args=(run_id, gpu, reader), name=f"g2rpo-run-{run_id}")
        proc.start()
        reader.close()  # only the child holds the read end: EOF there means this worker is gone
        runs.set_child(run_id, proc.pid)
        log.info("run %s: training in process %s%s", run_id, proc.pid, f" on GPU {gpu}" if gpu else "")
        return watch(run_id, proc)
    except Exception:
        return "failed", f"the worker could not run it:\n{traceback.format_exc()}"
    finally:
        free_gpus.put(gpu)
        for end in (reader, writer):
            if end is not None:
                end.close()
