"""A run's log, live in the Runs tab: the last lines of its training process's `log.txt` (what the
trainer prints, warnings, the traceback of a failure).

That log names files and settings of this machine (the data folder, the Python installation, the
repository, CUDA_VISIBLE_DEVICES) and could quote a secret an error message carried (a database URL
with its password, a token), while a public Space serves each visitor only what a page needs. So:
- when a login is configured (G2RPO_PASSWORD, or Hugging Face sign-in) only a logged-in session
  reads it; the page tells others why it is hidden, the API's /log refuses them;
- what is shown is redacted for everyone, by the rule every page follows (app/redact.py): the run
  folder, the data folder, the repository, the Python installation and the home folder become
  <run>, <data>, <app>, <python>, ~; other absolute paths keep only their last folder; secrets,
  tokens and the credentials in URLs become [redacted];
- it is bounded: the last MAX_BYTES of the file, at most MAX_LINES lines of LINE_CHARS characters.
"""
from __future__ import annotations

import gradio as gr

from app import auth, numbers
from app.redact import redact

MAX_BYTES = 64_000
MAX_LINES = 200
DEFAULT_LINES = 40
LINE_CHARS = 400
HIDDEN = ("Log in to read the run's log: it names files and settings of this machine, so with a login "
          "configured only logged-in users see it.")


def tail(run_id: int, lines: int = DEFAULT_LINES) -> str:
    """The redacted last `lines` lines of the run's log ("" before it has one)."""
    from jobs import supervise

    text = supervise.log_tail(run_id, MAX_BYTES)
    kept = text.splitlines()[-max(1, min(int(lines), MAX_LINES)):]
    if len(text.encode()) >= MAX_BYTES and kept:
        kept = kept[1:] if len(kept) > 1 else kept  # the first line read may be cut: drop it
    cut = [line if len(line) <= LINE_CHARS else line[:LINE_CHARS - 1] + "…" for line in kept]
    return redact("\n".join(cut), run_id)


def _lines(lines) -> int:
    return numbers.whole(lines, 1, MAX_LINES, "Lines")


def log_api(profile: gr.OAuthProfile | None, authorized: bool, run_id, lines=DEFAULT_LINES) -> str:
    """API /log: the selected run's log tail; refused without the login when one is configured."""
    from app.numbers import selected_id
    from jobs import api

    auth.guard(authorized, profile)
    run_id, lines = selected_id(run_id), _lines(lines)
    api.get_run(run_id)  # JobError for an unknown run
    return tail(run_id, lines) or f"Run #{run_id} has no log yet (it has not started)."


def log_page(profile: gr.OAuthProfile | None, authorized: bool, run_id, lines=DEFAULT_LINES) -> str:
    """The page's log box: the tail, or why it is not shown (hidden, no run selected, bad input)."""
    from jobs import api

    if run_id in (None, ""):
        return "Select a run to read its log."
    try:
        return log_api(profile, authorized, run_id, lines)
    except gr.Error as err:
        return HIDDEN if "Log in first" in str(err.message) else f"⚠️ {err.message}"
    except api.JobError as err:
        return f"⚠️ {err}"
