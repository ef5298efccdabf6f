"""What the Monitor tab knows about the run it shows, refreshed incrementally.

A page keeps a `view` (in its session state): the run's row, every metrics row drawn so far, the
attribution history, evaluations, samples and checkpoints. `poll` asks the database only for what is new
(iterations after the last one drawn, the last history bin again) and says whether anything
changed, so an idle page costs three small queries per tick (the run's row, its checkpoints and the
interrupted-run check) and sends nothing to the browser.
"""
from __future__ import annotations

from pathlib import Path

from engine.rewards import held_out_rewards
from jobs import api, settings


def new_view(run_id: int | None) -> dict:
    return {"run_id": run_id, "run": None, "metrics": [], "history": None, "evaluations": [], "samples": [],
            "checkpoints": []}


def _merge_history(old: dict | None, new: dict) -> dict:
    """Append a history poll to the one drawn: its first bin replaces our last (it was refreshed)."""
    if old is None or not old["iterations"]:
        return new
    if not new["iterations"]:
        return old
    keep = sum(1 for it in old["iterations"] if it < new["iterations"][0])
    steps = sorted(set(old["branch_steps"]) | set(new["branch_steps"]))
    merged = {"iterations": old["iterations"][:keep] + new["iterations"], "every": old["every"], "branch_steps": steps}

    def widen(rows, their_steps):  # rows over their_steps -> rows over all steps (None where absent)
        return [[dict(zip(their_steps, row)).get(k) for k in steps] for row in rows]

    for key in api.queries.HISTORY_VALUES:
        merged[key] = widen(old[key][:keep], old["branch_steps"]) + widen(new[key], new["branch_steps"])
    return merged


def poll(view: dict | None, run_id: int | None) -> tuple[dict, bool]:
    """(the refreshed view, whether anything changed since the last poll)."""
    if view is None or view.get("run_id") != run_id:
        view = new_view(run_id)
    if run_id is None:
        return view, False
    run = api.get_run(run_id)
    changed = view["run"] is None or any(view["run"].get(k) != run[k] for k in ("status", "last_iteration", "error"))
    metrics = view["metrics"]
    last = run["last_iteration"] if run["last_iteration"] is not None else -1
    if metrics and metrics[-1]["iteration"] > last:  # a resume dropped iterations it will redo
        view["metrics"] = metrics = [m for m in metrics if m["iteration"] <= last]
        view["history"], changed = None, True
    since = metrics[-1]["iteration"] if metrics else -1
    if last > since:
        metrics += api.latest_metrics(run_id, since_iteration=since)
        changed = True
    if changed:
        history = view["history"]
        history_since = history["iterations"][-1] - 1 if history and history["iterations"] else -1
        view["history"] = _merge_history(history, api.attribution_history(run_id, since_iteration=history_since,
                                                                         every=history and history["every"]))
        view["evaluations"] = api.queries.evaluations(run_id)
        view["samples"] = api.samples(run_id)
        view["checkpoints"] = api.checkpoints(run_id)
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
        last = view["metrics"][-1]
        evaluations = sum(m["model_evaluations"] for m in view["metrics"])
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


def gallery(view: dict, newest: int = 24) -> list[tuple]:
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
