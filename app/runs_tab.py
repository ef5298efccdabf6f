"""Runs: every run with its status, progress, ETA and latest reward; cancel, resume, delete, download.

All of it is read from the database, so it survives restarts of the app and of the worker.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import gradio as gr

from app import auth
from app.errors import user_errors

COLUMNS = ["id", "name", "algorithm", "model", "status", "progress", "ETA", "reward", "created (UTC)"]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, s = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {s:02d}s"


def table() -> list[list]:
    """One row per run, newest first."""
    from jobs import api

    rows = api.list_runs()
    summaries = api.run_summaries([r["id"] for r in rows])
    out = []
    for r in rows:
        done = 0 if r["last_iteration"] is None else r["last_iteration"] + 1
        summary = summaries[r["id"]]
        eta = ""
        if r["status"] == "running" and summary["seconds_per_iteration"] is not None:
            eta = _duration((r["iterations"] - done) * summary["seconds_per_iteration"])
        reward = summary["reward"]
        out.append([r["id"], r["name"], r["algorithm"], r["model"], r["status"],
                    f"{done}/{r['iterations']} ({100 * done // max(r['iterations'], 1)}%)", eta,
                    "" if reward is None else round(reward, 4), r["created_at"].strftime("%Y-%m-%d %H:%M")])
    return out


def run_choices() -> list[tuple[str, int]]:
    from jobs import api

    return [(f"#{r['id']} {r['name'] or r['algorithm']} · {r['status']}", r["id"]) for r in api.list_runs()]


def selected_id(run_id) -> int:
    """The run id a field or an API call gave: a whole number (2.5 is no run, not run 2)."""
    if run_id in (None, ""):
        raise gr.Error("Select a run in the table first.")
    try:
        number = float(run_id)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number != int(number) or number < 1:
        raise gr.Error(f"No run {str(run_id)[:30]}: run ids are whole numbers >= 1.")
    return int(number)


def act(action: str, authorized: bool, run_id, profile: gr.OAuthProfile | None = None) -> str:
    from jobs import api

    auth.guard(authorized, profile)  # resuming spends compute like launching: guarded too
    run_id = selected_id(run_id)
    try:
        if action == "cancel":
            return f"Run #{run_id}: {api.cancel(run_id)}."
        if action == "resume":
            api.resume(run_id)
            return f"Run #{run_id} queued again; it continues from its last checkpoint."
        api.delete(run_id)
        return f"Run #{run_id} deleted."
    except (api.JobError, api.QueueError) as err:
        raise gr.Error(str(err)) from None


def cancel(profile: gr.OAuthProfile | None, authorized: bool, run_id) -> str:
    return act("cancel", authorized, run_id, profile)


def resume(profile: gr.OAuthProfile | None, authorized: bool, run_id) -> str:
    return act("resume", authorized, run_id, profile)


def delete(profile: gr.OAuthProfile | None, authorized: bool, run_id) -> str:
    return act("delete", authorized, run_id, profile)


ACTIONS = {"cancel": cancel, "resume": resume, "delete": delete}
EXPORTS = Path(tempfile.gettempdir()) / "g2rpo-exports"  # outside the data folder, which is never served


@user_errors
def download(profile: gr.OAuthProfile | None, authorized: bool, run_id) -> str:
    """The run exported as a zip: the latest LoRA in diffusers' format (`lora/`, loads with
    pipe.load_lora_weights), its config, metrics, records and evaluations. Written to a temporary
    folder (one zip per run, replaced), from which Gradio serves its own copy."""
    from jobs import api

    auth.guard(authorized, profile)
    run_id = selected_id(run_id)
    if not api.get_run(run_id)["checkpoints"]:
        raise gr.Error(f"Run #{run_id} has no checkpoint yet.")
    folder = EXPORTS / str(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"run-{run_id}.zip").unlink(missing_ok=True)
    return str(api.export(run_id, folder / f"run-{run_id}.zip"))


@user_errors
def runs_api() -> list[dict]:
    """API: every run (newest first) with the table's columns."""
    return [dict(zip(COLUMNS, row)) for row in table()]


def build(authorized: gr.State) -> dict:
    grid = gr.Dataframe(headers=COLUMNS, value=table, interactive=False, elem_id="runs-table",
                        label="Runs (click a row to select it)")
    with gr.Row():
        selected = gr.Number(label="Selected run", elem_id="selected-run", scale=1)
        cancel_button = gr.Button("Cancel", elem_id="cancel-button", scale=1)
        resume_button = gr.Button("Resume", scale=1)
        delete_button = gr.Button("Delete", variant="stop", scale=1)
        export = gr.Button("Download LoRA", scale=1)
    message = gr.Markdown(elem_id="runs-message")
    archive = gr.File(label="LoRA (diffusers format)", visible=True, interactive=False)
    timer = gr.Timer(3.0)

    def on_select(event: gr.SelectData, rows):
        return rows.iloc[event.index[0], 0] if hasattr(rows, "iloc") else rows[event.index[0]][0]

    grid.select(on_select, grid, selected, api_visibility="private")
    timer.tick(table, None, grid, api_visibility="private", concurrency_limit=None, show_progress="hidden")
    for button, action in ((cancel_button, "cancel"), (resume_button, "resume"), (delete_button, "delete")):
        button.click(user_errors(ACTIONS[action]), [authorized, selected], message,
                     api_name=action).then(table, None, grid, api_visibility="private")
    export.click(download, [authorized, selected], archive, api_name="download")
    gr.api(runs_api, api_name="runs")
    return {"selected": selected, "grid": grid}
