"""Runs: every run with its status, progress, ETA and latest reward; cancel, resume, delete, download,
push the LoRA to the Hub; where the run's experiment trackers keep it.

All of it is read from the database, so it survives restarts of the app and of the worker.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from app import auth, escape, log_tail, notes
from app.errors import in_message_line, page_error, page_text, user_errors
from app.numbers import selected_id
from app.redact import redact
from app.runs_table import COLUMNS, DATATYPES, table

def run_choices() -> list[tuple[str, int]]:
    from jobs import api

    return [(f"#{r['id']} {r['name'] or r['algorithm']} · {r['status']}", r["id"]) for r in api.list_runs()]


def redo_note(run_id: int) -> str:
    """What a resume of the run will redo: it restarts from its newest checkpoint."""
    from jobs import api

    point = api.resume_point(run_id)
    if point["done"] == 0:
        return "it starts from the beginning: no iteration was trained yet"
    if point["redo"] == 0:
        return f"it continues at iteration {point['start'] + 1}, from its checkpoint after {point['start']}: nothing is redone"
    where = (f"its checkpoint after {point['start']} iterations" if point["start"]
             else "iteration 0: it has no checkpoint yet")
    return (f"it restarts from {where}, so {point['redo']} of the {point['done']} iterations done "
            f"({point['start'] + 1}–{point['done']}) will be redone")


def act(action: str, authorized: bool, run_id, profile: gr.OAuthProfile | None = None) -> str:
    from jobs import api

    auth.guard(authorized, profile)  # resuming spends compute like launching: guarded too
    run_id = selected_id(run_id)
    try:
        if action == "cancel":
            state = api.cancel(run_id)
            keep = " (saving a checkpoint of its last completed iteration)" if state == "cancelling" else ""
            return f"Run #{run_id}: {state}{keep}."
        if action == "resume":
            note = redo_note(run_id)
            api.resume(run_id)
            return f"Run #{run_id} queued again; {note}."
        api.delete(run_id)
        return f"Run #{run_id} deleted."
    except (api.JobError, api.QueueError) as err:
        raise page_error(page_text(err)) from None


def cancel(profile: gr.OAuthProfile | None, authorized: bool, run_id) -> str:
    return act("cancel", authorized, run_id, profile)


def resume(profile: gr.OAuthProfile | None, authorized: bool, run_id) -> str:
    return act("resume", authorized, run_id, profile)


def delete(profile: gr.OAuthProfile | None, authorized: bool, run_id) -> str:
    return act("delete", authorized, run_id, profile)


def selection(run_id) -> tuple:
    """For the selected run: a line on its state (what Resume would redo, its checkpoints: the
    latest and the best held-out one), and which of Cancel, Resume, Delete and Download apply."""
    from app import curves
    from app.monitor import held_out
    from jobs import api
    from jobs.models import ACTIVE, RESUMABLE

    off = [gr.update(interactive=False)] * 6
    try:
        run = api.get_run(selected_id(run_id))
    except (gr.Error, api.JobError):
        return ("", *off)
    parts = [f"Run #{run['id']} is **{run['status']}**."]
    if run.get("tags"):
        parts.append(f"Tags: {escape.markdown(', '.join(run['tags']))}.")
    resumable = run["status"] in RESUMABLE and run["status"] != "completed"  # a completed one trains longer
    if resumable:
        parts.append(f"Resume: {redo_note(run['id'])}.")
    from engine.training.tracking import locations

    # Markdown with the folders in code spans, redacted: "TensorBoard: `<run>/trackers/g2rpo`"
    parts += [f"{redact(line, run['id'])}." for line in locations(run["config"], run["folder"])]
    checkpoints = api.checkpoints(run["id"])
    if checkpoints:
        parts.append(f"Latest checkpoint `{checkpoints[-1]['path']}`.")  # relative: checkpoints/iter_000010
        best = curves.best_checkpoint(api.queries.evaluations(run["id"]), checkpoints, held_out({"run": run}))
        if best is not None and best["checkpoint"] != checkpoints[-1]["path"]:
            parts.append(f"Best held-out: `{best['checkpoint']}` (after {best['trained']} iterations; in Compare).")
    active = run["status"] in ACTIVE
    return (" ".join(parts), gr.update(interactive=active), gr.update(interactive=resumable),
            gr.update(interactive=not active), gr.update(interactive=bool(checkpoints)),
            gr.update(interactive=run["status"] in RESUMABLE), gr.update(interactive=True))


def ask_delete(run_id):
    """Delete asks first: the confirmation row, naming what goes."""
    try:
        number = selected_id(run_id)
    except gr.Error as err:
        return gr.update(visible=False), f"⚠️ {err.message}"
    return (gr.update(visible=True), f"Delete run #{number} with its metrics, samples and checkpoints? "
                                     "This cannot be undone.")


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


def push(profile: gr.OAuthProfile | None, authorized: bool, run_id, repo: str) -> str:
    """The run's latest LoRA, with its model card and samples, to a Hub model repository as one
    commit, with the app's token (HF_TOKEN: a Space secret)."""
    from jobs import api

    auth.guard(authorized, profile)  # it writes with the operator's token
    run_id = selected_id(run_id)
    repo = (repo or "").strip()
    if not repo:
        raise gr.Error("Name the Hub repository to push to (user/name).")
    try:
        return f"Run #{run_id}'s LoRA pushed: {api.push(run_id, repo)}"
    except (api.JobError, api.HubError) as err:
        raise page_error(page_text(err)) from None


@user_errors
def runs_api() -> list[dict]:
    """API: every run (newest first) with the table's columns."""
    return [dict(zip(COLUMNS, row)) for row in table()]


def build(authorized: gr.State) -> dict:
    from app import run_followup

    grid = gr.Dataframe(headers=COLUMNS, datatype=DATATYPES, value=table, interactive=False, elem_id="runs-table",
                        show_search="filter", max_height=420,
                        label="Runs (click a row to select it; a column's header sorts, the search box filters)")
    off = dict(interactive=False, scale=1)  # until a run is selected: then by its state
    with gr.Row():
        # text, not a number box: an empty number box shows 0, as if run 0 were selected
        selected = gr.Textbox(label="Selected run", elem_id="selected-run", scale=1, placeholder="a run id",
                              max_length=30)
        cancel_button = gr.Button("Cancel", elem_id="cancel-button", **off)
        resume_button = gr.Button("Resume", elem_id="resume-button", **off)
        delete_button = gr.Button("Delete…", variant="stop", elem_id="delete-button", **off)
        export = gr.Button("Download LoRA", elem_id="download-button", **off)
    with gr.Row():
        more = gr.Number(20, label="More iterations", precision=0, elem_id="more-iterations", scale=1)
        longer_button = gr.Button("Train longer", elem_id="train-longer-button", **off)
        clone_button = gr.Button("Clone into the Launch form", elem_id="clone-button", **off)
    with gr.Row():
        repo = gr.Textbox(label="Hub repository (user/name)", elem_id="push-repo", scale=3,
                          placeholder="a model repository; the app's HF_TOKEN writes it")
        push_button = gr.Button("Push LoRA to the Hub", elem_id="push-button", scale=1)
    about = gr.Markdown(elem_id="selected-info")
    with gr.Row(visible=False, elem_id="delete-confirm-row") as confirm_row:
        confirm_text = gr.Markdown()
        confirm = gr.Button("Yes, delete it", variant="stop", elem_id="delete-confirm", scale=0, min_width=140)
        keep = gr.Button("Keep it", elem_id="delete-keep", scale=0, min_width=100)
    message = gr.Markdown(elem_id="runs-message")
    archive = gr.File(label="LoRA (diffusers format)", visible=True, interactive=False)
    with gr.Accordion("Notes and tags of the selected run", open=False):
        notes_box = gr.Textbox(label="Notes", lines=3, max_lines=12, elem_id="run-notes",
                               placeholder="what this run tries, what you saw", max_length=notes.MAX_NOTES_CHARS)
        with gr.Row():
            tags_box = gr.Textbox(label="Tags (comma-separated)", elem_id="run-tags", scale=3,
                                  placeholder="baseline, lr sweep")
            save_notes = gr.Button("Save notes and tags", elem_id="save-notes", scale=1)
    with gr.Accordion("Config of the selected run (YAML: every setting, defaults written out)", open=False):
        config_view = gr.Code(language="yaml", interactive=False, elem_id="run-config", max_lines=40)
    with gr.Accordion("Log of the selected run (live; the last lines, paths and secrets redacted)", open=False):
        lines = gr.Slider(10, log_tail.MAX_LINES, value=log_tail.DEFAULT_LINES, step=10, label="lines",
                          elem_id="log-lines")
        log_box = gr.Textbox(label="log.txt", lines=12, max_lines=30, interactive=False, autoscroll=True,
                             elem_id="run-log")
    timer = gr.Timer(3.0)
    state_outputs = [about, cancel_button, resume_button, delete_button, export, longer_button, clone_button]

    def on_select(event: gr.SelectData, rows):  # the clicked row as shown: sorted or filtered in the page
        if event.row_value:
            return event.row_value[0]
        return rows.iloc[event.index[0], 0] if hasattr(rows, "iloc") else rows[event.index[0]][0]

    grid.select(on_select, grid, selected, api_visibility="private")
    selected.change(selection, selected, state_outputs, api_visibility="private", show_progress="hidden")
    selected.change(notes.load, selected, [notes_box, tags_box], api_visibility="private", show_progress="hidden")
    selected.change(run_followup.config_yaml, selected, config_view, api_visibility="private", show_progress="hidden")
    longer_button.click(in_message_line(run_followup.train_longer, 0), [authorized, selected, more], message,
                        api_name="train_longer_page", api_visibility="private").then(
        lambda run_id: (table(), *selection(run_id), run_followup.config_yaml(run_id)), selected,
        [grid] + state_outputs + [config_view], api_visibility="private")
    gr.Button(visible=False).click(user_errors(run_followup.train_longer), [authorized, selected, more], message,
                                   api_name="train_longer")
    save_notes.click(in_message_line(notes.save, 0), [authorized, selected, notes_box, tags_box], message,
                     api_name="notes_page", api_visibility="private")
    timer.tick(lambda run_id: (table(), *selection(run_id)), selected, [grid] + state_outputs,
               api_visibility="private", concurrency_limit=None, show_progress="hidden")
    after = dict(fn=lambda run_id: (table(), *selection(run_id)), inputs=selected, outputs=[grid] + state_outputs,
                 api_visibility="private")
    # The page's buttons write every outcome, success or problem, to one message line (each replaces
    # the last); the API's /cancel, /resume, /delete (hidden buttons) raise as before.
    cancel_button.click(in_message_line(cancel, 0), [authorized, selected], message, api_name="cancel_page",
                        api_visibility="private").then(**after)  # named: the function's name is the API's
    resume_button.click(in_message_line(resume, 0), [authorized, selected], message, api_name="resume_page",
                        api_visibility="private").then(**after)  # named: the function's name is the API's
    delete_button.click(ask_delete, selected, [confirm_row, confirm_text], api_visibility="private")
    keep.click(lambda: (gr.update(visible=False), "Kept."), None, [confirm_row, message], api_visibility="private")
    confirm.click(in_message_line(delete, 0), [authorized, selected], message, api_name="delete_page",
                  api_visibility="private").then(
        lambda: gr.update(visible=False), None, confirm_row, api_visibility="private").then(**after)
    for action in ACTIONS:
        hidden = gr.Button(visible=False)
        hidden.click(user_errors(ACTIONS[action]), [authorized, selected], message, api_name=action).then(**after)
    for event in (selected.change, lines.release, timer.tick):  # live, with the table
        event(log_tail.log_page, [authorized, selected, lines], log_box, api_visibility="private",
              concurrency_limit=None, show_progress="hidden")
    gr.Button(visible=False).click(user_errors(log_tail.log_api), [authorized, selected, lines], log_box,
                                   api_name="log")
    export.click(download, [authorized, selected], archive, api_name="download")
    push_button.click(in_message_line(push, 0), [authorized, selected, repo], message, api_name="push_page",
                      api_visibility="private")  # the API's /push (below) raises instead
    hidden = gr.Button(visible=False)
    hidden.click(user_errors(push), [authorized, selected, repo], message, api_name="push")
    gr.api(runs_api, api_name="runs")
    return {"selected": selected, "grid": grid, "clone": clone_button, "message": message}
