"""Images for the Compare tab, drawn in a separate process so the UI process never imports torch.

One spawned process keeps the model and the LoRAs it has loaded between requests; requests wait
their turn (the adapter state is global to the model, so they must not interleave).
"""
from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def _start() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    return _pool


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
