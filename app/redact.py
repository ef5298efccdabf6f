"""One rule for every text of this machine that reaches a page: the run's log (app/log_tail.py), a
run's error in the Monitor, the Runs tab's line on the selected run, and every refusal the app
shows or its HTTP API returns (app/errors.py).

Such text names files and settings of this machine (the data folder, the Python installation, the
repository) and could quote a secret an error message carried (a database URL with its password,
a token), while a public Space serves each visitor only what a page needs. So:
- the run folder, the data folder, the repository, the Python installation and the home folder
  become <run>, <data>, <app>, <python>, ~; any other absolute path keeps only its last folder
  and file (…/folder/file);
- values of the environment's secrets (*TOKEN*, *SECRET*, *PASSWORD*, *KEY*, *CREDENTIAL*),
  Hugging Face tokens and the credentials in URLs become [redacted].
The result is plain text: a page that renders Markdown or HTML escapes it too (app/escape.py).
"""
from __future__ import annotations

import os
import re
import site
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SECRET_NAMES = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL", re.IGNORECASE)
HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{20,}")
URL_CREDENTIALS = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/\s:@]+(?::[^/\s@]*)?@", re.IGNORECASE)
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~<>-])/(?:[^\s/'\"]+/)+")  # the folders of an absolute path


def _places(run_id: int | None) -> list[tuple[str, str]]:
    """(folder, what to call it), longest first: the most specific name wins."""
    from jobs import settings

    places = [(REPO, "<app>"), (Path(sys.prefix), "<python>"), (Path(sys.base_prefix), "<python>"),
              (Path.home(), "~")]
    places += [(Path(p), "<python>") for p in site.getsitepackages()]
    try:  # the text may be the very message that the data folder cannot be used
        data = settings.data_dir()
        places += [(data, "<data>")] + ([(settings.run_dir(run_id), "<run>")] if run_id is not None else [])
    except settings.StorageError:
        pass
    named = {}
    for folder, name in places:
        for spelling in {str(folder), str(Path(folder).resolve())}:
            if len(spelling) > 1:
                named.setdefault(spelling.rstrip("/"), name)
    return sorted(named.items(), key=lambda item: -len(item[0]))


def redact(text: str, run_id: int | None = None) -> str:
    """`text` as a visitor may read it (see the module's docstring); `run_id`: whose folder is <run>."""
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
