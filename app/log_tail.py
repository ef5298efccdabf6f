"""A run's log, live in the Runs tab: the last lines of its training process's `log.txt` (what the
trainer prints, warnings, the traceback of a failure).

That log names files and settings of this machine (the data folder, the Python installation, the
repository, CUDA_VISIBLE_DEVICES) and could quote a secret an error message carried (a database URL
with its password, a token), while a public Space serves each visitor only what a page needs. So:
- when a login is configured (G2RPO_PASSWORD, or Hugging Face sign-in) only a logged-in session
  reads it; the page tells others why it is hidden, the API's /log refuses them;
- what is shown is redacted for everyone: the run folder, the data folder, the repository, the
  Python installation and the home folder become <run>, <data>, <app>, <python>, ~; any other
  absolute path keeps only its last folder and file; values of the environment's secrets
  (*TOKEN*, *SECRET*, *PASSWORD*, *KEY*, *CREDENTIAL*), Hugging Face tokens and the credentials
  in URLs become [redacted];
- it is bounded: the last MAX_BYTES of the file, at most MAX_LINES lines of LINE_CHARS characters.
"""
from __future__ import annotations

import os
import re
import site
import sys
from pathlib import Path

import gradio as gr

from app import auth

MAX_BYTES = 64_000
MAX_LINES = 200
DEFAULT_LINES = 40
LINE_CHARS = 400
REPO = Path(__file__).resolve().parent.parent
SECRET_NAMES = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL", re.IGNORECASE)
HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{20,}")
URL_CREDENTIALS = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/\s:@]+(?::[^/\s@]*)?@", re.IGNORECASE)
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~<>-])/(?:[^\s/'\"]+/)+")  # the folders of an absolute path
HIDDEN = ("Log in to read the run's log: it names files and settings of this machine, so with a login "
          "configured only logged-in users see it.")


def _places(run_id: int) -> list[tuple[str, str]]:
    """(folder, what to call it), longest first: the most specific name wins."""
    from jobs import settings

    places = [(settings.run_dir(run_id), "<run>"), (settings.data_dir(), "<data>"), (REPO, "<app>"),
              (Path(sys.prefix), "<python>"), (Path(sys.base_prefix), "<python>"), (Path.home(), "~")]
    places += [(Path(p), "<python>") for p in site.getsitepackages()]
    named = {}
    for folder, name in places:
        for spelling in {str(folder), str(Path(folder).resolve())}:
            if len(spelling) > 1:
                named.setdefault(spelling.rstrip("/"), name)
    return sorted(named.items(), key=lambda item: -len(item[0]))


def redact(text: str, run_id: int) -> str:
    """The log as a visitor may read it (see the module's docstring)."""
    for name, value in os.environ.items():
        if SECRET_NAMES.search(name) and len(value) >= 6:
            text = text.replace(value, "[redacted]")
    text = HF_TOKEN.sub("hf_[redacted]", text)
    text = URL_CREDENTIALS.sub(r"\1[redacted]@", text)
    for folder, name in _places(run_id):
        text = re.sub(re.escape(folder) + r"(?=/|\b|$)", name, text)

    def shorten(match: re.Match) -> str:  # /a/b/c/ -> …/c/
        folders = match.group(0).strip("/").split("/")
        return f"…/{folders[-1]}/"

    return ABSOLUTE_PATH.sub(shorten, text)


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
    try:
        number = float(lines)
    except (TypeError, ValueError):
        number = float("nan")
    if number != number or number != int(number) or not 1 <= number <= MAX_LINES:
        raise gr.Error(f"Lines: a whole number from 1 to {MAX_LINES}, not {str(lines)[:20]!r}.")
    return int(number)


def log_api(profile: gr.OAuthProfile | None, authorized: bool, run_id, lines=DEFAULT_LINES) -> str:
    """API /log: the selected run's log tail; refused without the login when one is configured."""
    from app.runs_tab import selected_id
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
