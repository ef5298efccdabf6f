"""What the Monitor tab knows about the run it shows, refreshed incrementally.

A page keeps a `view` (in its session state): the run's row, its curve rows (one per `every`
iterations, at most jobs.rollup.MAX_POINTS of them however long the run, each with the step x
iteration attribution summary from which `history` is drawn), the latest iteration's metrics,
the evaluations, the newest samples and the checkpoints the warnings read. `poll` asks the
database only for what is new (the last curve row again and those after it) and says whether
anything changed, so an idle page costs three small queries per tick (the run's row, its
checkpoints and the interrupted-run check) and sends nothing to the browser. When the run grows
past what its rows' width can draw, or a resume rewrote iterations, the rows are read again.
"""
from __future__ import annotations

from pathlib import Path

from engine.rewards import held_out_rewards
from jobs import api, settings

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
    run = api.get_run(run_id)
    changed = view["run"] is None or any(view["run"].get(k) != run[k] for k in ("status", "last_iteration", "error"))
    last = run["last_iteration"] if run["last_iteration"] is not None else -1
    every = api.queries.curve_every(last + 1)
    metrics = view["metrics"]
    restarted = view["run"] is not None and view["run"].get("attempts") != run["attempts"]  # a resume may redo some
    if every != view["every"] or restarted or (metrics and metrics[-1]["last"] > last):
        view["every"], view["metrics"], metrics, changed = every, [], [], True  # read every row again
    if last > (metrics[-1]["last"] if metrics else -1):
        since = metrics[-1]["iteration"] - 1 if metrics else -1  # the last row again: its bucket grew
        new = api.curves(run_id, since_iteration=since, every=every)["rows"]
        if new:
            view["metrics"] = [m for m in metrics if m["iteration"] < new[0]["iteration"]] + new
            changed = True
    if changed:
        view["history"] = api.queries.history(view["metrics"], every)
        view["latest"] = (api.latest_metrics(run_id, since_iteration=last - 1) or [None])[-1] if last >= 0 else None
        view["evaluations"] = api.queries.evaluations(run_id)
        view["samples"] = api.samples(run_id, newest=GALLERY)
        view["checkpoints"] = api.checkpoints(run_id, evaluated=True)
    view["run"] = run
    return view, changed


def status_line(view: dict) -> str:
    run = view["run"]
    if run is None:
        return "Select a run (or launch one)."
    done = 0 if run["last_iteration"] is None else run["last_iteration"] + 1
    parts = [f"**Run #{run['id']}** {run['name']}", f"{run['algorithm']} on {run['model']}", f"**{run['status']}**",
             f"{done}/{run['iterations']} iterations"]
    if view["metrics"]:
        last = view.get("latest") or view["metrics"][-1]
        evaluations = sum(m["model_evaluations"] for m in view["metrics"])  # a row's total over its iterations
        parts.append(f"reward {last['reward']:.4f}" if last["reward"] is not None else "reward n/a")
        parts.append(f"{evaluations:,} model evaluations")
    line = " · ".join(parts)
    if run.get("error"):
        line += f"\n\n⚠️ {run['error'].strip().splitlines()[-1][:300]}"
    return line


def held_out(view: dict) -> set[str]:
    """Rewards to label as held out: the catalog's, and any evaluation-only reward of this run."""
    config = (view["run"] or {}).get("config") or {}
    trained = {r["name"] for r in config.get("rewards", [])}
    return set(held_out_rewards()) | (set(config.get("eval_rewards", [])) - trained)


def merge_spans(view: dict) -> dict[int, int]:
    """E-GRPO's merged steps from the run's config: branch step k -> grid steps it spans (1: not merged)."""
    a = ((view["run"] or {}).get("config") or {}).get("algorithm") or {}
    return dict(zip(a.get("branch_steps") or [], a.get("merge_steps") or []))


def reward_weights(view: dict) -> dict[str, float]:
    config = (view["run"] or {}).get("config") or {}
    return {r["name"]: r["weight"] for r in config.get("rewards", [])}


def gallery(view: dict, newest: int = GALLERY) -> list[tuple]:
    """The newest samples first, captioned with the iterations trained and the prompt. The images
    are read here and handed to Gradio as pixels: the data folder itself is never served."""
    samples = sorted(view["samples"], key=lambda s: (-s["trained"], s["position"]))[:newest]
    shown = []
    for s in samples:
        image = sample_image(s["file"], view["run_id"])
        if image is not None:
            shown.append((image, f"{'base' if s['trained'] == 0 else str(s['trained']) + ' iterations'}\n{s['prompt']}"))
    return shown


def sample_image(file: str, run_id: int):
    """A sample PNG of the run (a path under its samples/ folder), or None if it is not there."""
    from PIL import Image

    folder = (settings.run_dir(run_id) / "samples").resolve()
    path = Path(file).resolve()
    if not path.is_relative_to(folder) or path.suffix != ".png":
        return None
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError:  # deleted meanwhile, or still being written
        return None
