"""What a Monitor page knows about the run it shows, refreshed incrementally (app/monitor.py draws it).

A page keeps a `view` (in its session state): the run's row, its curve rows (one per `every`
iterations, at most jobs.rollup.MAX_POINTS of them however long the run, each with the step x
iteration attribution summary from which `history` is drawn), the latest iteration's metrics,
the evaluations, the newest samples and the checkpoints the warnings read. `poll` asks the
database only for what is new (the last curve row again and those after it) and says whether
anything changed, so an idle page costs two small queries per tick (the run's row and the
interrupted-run check) and sends nothing to the browser. When the run grows
past what its rows' width can draw, or a resume rewrote iterations, the rows are read again.

Here rather than in app/ so that `python -m jobs.bench` times the reads a page really makes.
"""
from __future__ import annotations

from jobs import api

GALLERY = 24  # newest samples shown


def new_view(run_id: int | None) -> dict:
    return {"run_id": run_id, "run": None, "every": None, "metrics": [], "latest": None, "history": None,
            "evaluations": [], "samples": [], "checkpoints": []}


def poll(view: dict | None, run_id: int | None) -> tuple[dict, bool]:
    """(the refreshed view, whether anything changed since the last poll)."""
    if view is None or view.get("run_id") != run_id:
        view = new_view(run_id)
    if run_id is None:
        return view, False
    run = api.get_run(run_id, checkpoints=False)  # the warnings read the evaluated ones below
    changed = view["run"] is None or any(view["run"].get(k) != run[k] for k in ("status", "last_iteration", "error"))
    last = run["last_iteration"] if run["last_iteration"] is not None else -1
    every = api.queries.curve_every(last + 1)
    metrics = view["metrics"]
    restarted = view["run"] is not None and view["run"].get("attempts") != run["attempts"]  # a resume may redo some
    if every != view["every"] or restarted or (metrics and metrics[-1]["last"] > last):
        view["every"], view["metrics"], view["history"], metrics, changed = every, [], None, [], True  # all again
    if last > (metrics[-1]["last"] if metrics else -1):
        since = metrics[-1]["iteration"] - 1 if metrics else -1  # the last row again: its bucket grew
        new = api.curves(run_id, since_iteration=since, every=every)["rows"]
        if new:
            kept = [m for m in metrics if m["iteration"] < new[0]["iteration"]]
            view["metrics"], changed = kept + new, True
            added = api.queries.history(new, every)
            view["history"] = added if not kept else _extend(view["history"], len(kept), added)
    if changed:
        if view["history"] is None or len(view["history"]["iterations"]) != len(view["metrics"]):
            view["history"] = api.queries.history(view["metrics"], every)
        view["latest"] = (api.latest_metrics(run_id, since_iteration=last - 1) or [None])[-1] if last >= 0 else None
        view["evaluations"] = api.queries.evaluations(run_id)
        view["samples"] = api.samples(run_id, newest=GALLERY)
        view["checkpoints"] = api.checkpoints(run_id, evaluated=True)
    if run["status"] == "queued":  # waiting: say so when no worker is alive to pick it up
        alive = api.workers_alive() > 0
        changed = changed or view.get("workers_alive") != alive
        view["workers_alive"] = alive
    view["run"] = run
    return view, changed


def _extend(history: dict | None, kept: int, new: dict) -> dict | None:
    """The history of the first `kept` rows followed by `new`'s, or None (drawn again from all
    rows) when they do not line up (other branch steps, or rows without attribution)."""
    if history is None or history["branch_steps"] != new["branch_steps"] or len(history["iterations"]) < kept:
        return None
    return {key: value[:kept] + new[key] if isinstance(value, list) and key != "branch_steps" else value
            for key, value in history.items()}
