"""Notes and tags of a run (Runs tab): what a researcher writes down about it, and short labels to
find it by ("baseline", "lr sweep"). Stored with the run (jobs.api.annotate); editing is guarded like
the other actions on runs, and bad input is refused with a message, storing nothing."""
from __future__ import annotations

import gradio as gr

from app import auth, escape
from app.errors import page_error, page_text

MAX_NOTES_CHARS = 4000  # as jobs.api.annotate takes (the UI imports no jobs module at import time)


def load(run_id) -> tuple[str, str]:
    """The selected run's notes and its tags as "a, b" (empty when no run is selected)."""
    from app.numbers import selected_id
    from jobs import api

    try:
        run = api.get_run(selected_id(run_id), checkpoints=False)
    except (gr.Error, api.JobError):
        return "", ""
    return run["notes"], ", ".join(run["tags"])


def parse_tags(text: str) -> list[str]:
    return [t.strip() for t in str(text or "").split(",") if t.strip()]


def save(profile: gr.OAuthProfile | None, authorized: bool, run_id, notes: str, tags: str) -> str:
    from app.numbers import selected_id
    from jobs import api

    auth.guard(authorized, profile)
    run_id = selected_id(run_id)
    try:
        saved = api.annotate(run_id, notes=str(notes or ""), tags=parse_tags(tags))
    except api.JobError as err:
        raise page_error(page_text(err)) from None
    # The message line is Markdown: the tags as the text they are.
    tagged = f" Tags: {escape.markdown(', '.join(saved['tags']))}." if saved["tags"] else ""
    return f"Run #{run_id}: notes saved.{tagged}"
