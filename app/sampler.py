"""Images for the Compare tab, drawn in a separate process so the UI process never imports torch.

One spawned process keeps the model and the LoRAs it has loaded between requests; requests wait
their turn (the adapter state is global to the model, so they must not interleave). It dies with
the app, however the app dies (even by SIGKILL): it watches its parent and exits once it is gone,
and multiprocessing's resource tracker, which waits for it, exits after it.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

PARENT_CHECK_S = 0.5
_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def _start() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_die_with, initargs=(os.getpid(),))
    return _pool


def _die_with(parent: int) -> None:
    """In the sampler process: exit as soon as the app (`parent`) is gone. (PR_SET_PDEATHSIG would
    fire when the app's thread that started this process ends, not the app.)"""
    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="die-with-the-app", daemon=True).start()


def generate(timeout: float = 600, **request) -> list[dict]:
    """engine.compare.generate(**request) in the sampler process; restarts it if it died."""
    global _pool
    with _lock:
        try:
            return _start().submit(_generate, request).result(timeout)
        except BrokenProcessPool:  # e.g. killed for memory: start afresh next time
            _pool = None
            raise


def _generate(request: dict) -> list[dict]:
    from engine.compare import generate as engine_generate

    return engine_generate(**request)


def shutdown() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(cancel_futures=True)
        _pool = None
