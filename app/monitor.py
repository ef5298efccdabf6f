"""What the Monitor tab shows of the run in its view (jobs/view.py keeps the view and polls it):
the status line, the held-out labels, E-GRPO's merged steps, the reward weights and the gallery.
"""
from __future__ import annotations

from pathlib import Path

from app import escape
from app.redact import redact
from engine.rewards import held_out_rewards
from jobs import settings
from jobs.view import GALLERY, new_view, poll  # noqa: F401  (the tab's view, re-exported)

NO_WORKER = ("No worker is alive: queued runs wait until one starts (the app restarts its own worker; "
             "with G2RPO_WORKER=external, start `python -m jobs.worker`).")


def status_line(view: dict) -> str:
    run = view["run"]
    if run is None:
        return "Select a run (or launch one)."
    done = 0 if run["last_iteration"] is None else run["last_iteration"] + 1
    parts = [f"**Run #{run['id']}** {escape.markdown(run['name'])}", f"{run['algorithm']} on {run['model']}",
             f"**{run['status']}**", f"{done}/{run['iterations']} iterations"]
    if view["metrics"]:
        last = view.get("latest") or view["metrics"][-1]
        evaluations = sum(m["model_evaluations"] for m in view["metrics"])  # a row's total over its iterations
        parts.append(f"reward {last['reward']:.4f}" if last["reward"] is not None else "reward n/a")
        parts.append(f"{evaluations:,} model evaluations")
    line = " · ".join(parts)
    if run["status"] == "queued" and view.get("workers_alive") is False:
        line += f"\n\n⚠️ {NO_WORKER}"
    if run.get("error"):
        line += f"\n\n⚠️ {escape.markdown(error_line(run))}"
    return line


def error_line(run: dict) -> str:
    """A run's error in one redacted line: its first line, which says what happened ("training
    process killed by SIGKILL ..."), and when that line introduces more (a log's end, a
    traceback: it ends with ':'), the last line of it too."""
    lines = [line.strip() for line in run["error"].strip().splitlines() if line.strip()] or [""]
    text = f"{lines[0]} … {lines[-1]}" if len(lines) > 1 and lines[0].endswith(":") else lines[0]
    return redact(text, run["id"])[:300]


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
