"""Files a config names (prompt files, local model and reward folders): where they may be read from.

The CLI (`python -m engine.train`) runs as its user and reads any path. A config submitted through
the UI or the jobs API comes from someone else, so its files are read only from folders given
as `read_from` (jobs/settings.py: `prompts/`, the data folder's `prompts/` and `models/`, and
G2RPO_FILE_DIRS), and a refusal never says whether the path exists. Messages quote at most a short
cut excerpt of a file's content.
"""
from __future__ import annotations

import os
from pathlib import Path

from engine.training.hub import looks_like_hub_id
from engine.config.limits import LIMITS, excerpt


def inside(path: str, folders: list[Path]) -> bool:
    """Whether `path` (relative to the working directory) lies in one of `folders`: first by its
    text, so that a path outside is refused without a look at the file system (the answer is the
    same whether it exists or not); then with symlinks resolved, so that a link out counts as outside."""
    spelled = Path(os.path.abspath(Path(path).expanduser()))  # "..": resolved in the text
    roots = [Path(os.path.abspath(f)) for f in folders] + [Path(os.path.realpath(f)) for f in folders]
    if not any(spelled.is_relative_to(root) for root in roots):
        return False
    real = Path(os.path.realpath(spelled))
    return any(real.is_relative_to(Path(os.path.realpath(folder))) for folder in folders)


def refused(key: str, path: str, folders: list[Path] | None) -> str | None:
    """The message for a file outside the allowed folders (None: allowed, or no restriction)."""
    if folders is None or inside(path, folders):
        return None
    return (f"{key}: {excerpt(path)} is outside the folders configs submitted here may read "
            f"({', '.join(str(f) for f in folders)}); put the file there (or a folder in G2RPO_FILE_DIRS)")


def local_source_refused(key: str, source: str, folders: list[Path] | None) -> str | None:
    """For a model or reward source: a hub id ('owner/name') is always fine (and is then looked
    up as one only: engine.training.hub.sources_by_text); a local path ('/...', './...', '~/...') must be
    inside the allowed folders. Decided on the text alone, without looking at the file system."""
    if folders is None or looks_like_hub_id(source):
        return None
    return refused(key, source, folders)


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with # are skipped. Raises ValueError
    with a one-line reason (too large, not UTF-8 text, unreadable)."""
    path = Path(path).expanduser()
    limit = LIMITS["prompts_file_mb"]
    try:
        size = path.stat().st_size
        if size > limit.value() * 2**20:
            raise ValueError(f"{size / 2**20:,.0f} MB; at most {limit.value():,} MB (raise it with {limit.env})")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 text (byte {err.object[err.start]:#04x} at position {err.start:,})") from None
    except OSError as err:
        raise ValueError(err.strerror or type(err).__name__) from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
