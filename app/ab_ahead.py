"""A blind test's images: drawn by the sampler process, the next pair while the voter looks at this one.

`images(test, pair)` returns model A's and model B's image of a pair and their scores, from what
was drawn ahead or drawn now; `prepare(test, pair)` starts drawing a pair in a background thread.
Bounded: one thread, at most MAX_PENDING pairs waiting for it (more are drawn when shown), at most
MAX_KEPT pairs' images kept. The images are not stored: the sampler draws the same pair again from
its prompt and seed (after a restart, say).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

from app import model_choice, sampler

MAX_PENDING = 4
MAX_KEPT = 32
_lock = threading.Lock()
_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ab-ahead")
_drawn: OrderedDict[int, Future] = OrderedDict()  # pair id -> its images being drawn, or drawn
_hub: dict[str, str] = {}  # Hub ids checked on the Hub once per process (a run or a folder: a quick look each time)


def adapter(reference: str) -> str | None:
    """The folder or Hub id a test's model reference loads (model_choice.resolve)."""
    if reference in _hub:
        return _hub[reference]
    side = model_choice.resolve(reference)
    if side.adapter == reference:  # a Hub id
        _hub[reference] = side.adapter
    return side.adapter


def draw(test: dict, pair: dict) -> dict:
    """{"a": image, "b": image, "scores": {reward: [A's, B's]}} of one pair, drawn now."""
    settings, sampling = test["settings"], test["settings"]["sampling"]
    a, b = sampler.generate(model=settings["model"], adapters=[adapter(test["model_a"]), adapter(test["model_b"])],
                            prompts=[pair["prompt"]], seeds=[pair["seed"]], rewards=settings["rewards"],
                            steps=sampling["steps"], shift=sampling["shift"])
    return {"a": a["image"], "b": b["image"], "scores": {name: [a["scores"][name], b["scores"][name]]
                                                        for name in a["scores"]}}


def prepare(test: dict, pair: dict) -> None:
    """Start drawing `pair` unless it is drawn, on its way, or too many pairs wait already."""
    with _lock:
        waiting = sum(not f.done() for f in _drawn.values())
        if pair["id"] in _drawn or waiting >= MAX_PENDING:
            return
        _drawn[pair["id"]] = _pool.submit(draw, test, pair)
        while len(_drawn) > MAX_KEPT:
            _drawn.popitem(last=False)


def images(test: dict, pair: dict) -> dict:
    """The pair's images: what was drawn ahead (waiting for it if on its way), else drawn now."""
    with _lock:
        future = _drawn.pop(pair["id"], None)
    if future is not None:
        try:
            return future.result()
        except Exception:  # the sampler failed in the background: try once more, in the open
            pass
    return draw(test, pair)
