"""The worker `python app.py` starts for itself, watched: when it dies it is started again.

The worker is its own process (Huey's consumer needs the main thread, and training must never
share the UI's process). If it dies (killed, out of memory), runs it was training are marked
interrupted by the next worker, and queued runs would wait forever: so a watcher thread starts a
new one after RESTART_DELAY_S. Restarts are bounded (G2RPO_WORKER_RESTARTS within RESTART_WINDOW_S,
default 5 in 10 minutes): a worker that dies on every start is reported in the log and in the UI
(no heartbeat: "no worker is alive") instead of being restarted in a tight loop.
"""
from __future__ import annotations

import atexit
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque

POLL_S = 1.0
RESTART_DELAY_S = 2.0
RESTART_WINDOW_S = 600.0
log = logging.getLogger("app.worker")


def max_restarts() -> int:
    raw = os.environ.get("G2RPO_WORKER_RESTARTS", "5")
    try:
        return max(0, int(raw))
    except ValueError:
        raise SystemExit(f"error: G2RPO_WORKER_RESTARTS={raw!r} is not a whole number") from None


def _die_with_parent() -> None:  # runs in the worker before exec: SIGTERM it if the app dies, even by SIGKILL
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def describe_exit(code: int) -> str:
    """'exit code 1' or 'killed by SIGKILL' (Popen gives -N for a signal N)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class EmbeddedWorker:
    def __init__(self, command: list[str] | None = None):
        self.command = command or [sys.executable, "-m", "jobs.worker"]
        self.proc: subprocess.Popen | None = None
        self.restarts: deque[float] = deque()  # times of recent restarts
        self.gave_up = False
        self._stopping = threading.Event()

    def start(self) -> "EmbeddedWorker":
        self.proc = self._spawn()
        threading.Thread(target=self._watch, name="worker-watch", daemon=True).start()
        atexit.register(self.stop)
        return self

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(self.command, preexec_fn=_die_with_parent)

    def _watch(self) -> None:
        limit = max_restarts()
        while not self._stopping.wait(POLL_S):
            code = self.proc.poll()
            if code is None or self._stopping.is_set():
                continue
            now = time.monotonic()
            while self.restarts and now - self.restarts[0] > RESTART_WINDOW_S:
                self.restarts.popleft()
            if len(self.restarts) >= limit:
                self.gave_up = True
                log.error("the worker died (%s) after %d restarts in %d minutes: not restarting it; queued runs "
                          "wait until the app is restarted or a worker is started by hand (python -m jobs.worker)",
                          describe_exit(code), len(self.restarts), RESTART_WINDOW_S // 60)
                return
            log.error("the worker died (%s): starting a new one in %g s", describe_exit(code), RESTART_DELAY_S)
            if self._stopping.wait(RESTART_DELAY_S):
                return
            self.restarts.append(time.monotonic())
            self.proc = self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        worker = self.proc
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGINT)  # graceful: the running job is stopped and marked interrupted
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
