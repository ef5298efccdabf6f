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

from engine.hub import HUB_ID
from engine.limits import LIMITS, excerpt


def inside(path: str, folders: list[Path]) -> bool:
    """Whether `path` (symlinks resolved, relative to the working directory) lies in one of `folders`."""
    real = Path(os.path.realpath(Path(path).expanduser()))
    return any(real.is_relative_to(Path(os.path.realpath(folder))) for folder in folders)


def refused(key: str, path: str, folders: list[Path] | None) -> str | None:
    """The message for a file outside the allowed folders (None: allowed, or no restriction)."""
    if folders is None or inside(path, folders):
        return None
    return (f"{key}: {excerpt(path)} is outside the folders configs submitted here may read "
            f"({', '.join(str(f) for f in folders)}); put the file there (or a folder in G2RPO_FILE_DIRS)")


def local_source_refused(key: str, source: str, folders: list[Path] | None) -> str | None:
    """For a model or reward source: a hub id ('owner/name') is always fine; a local path must be
    inside the allowed folders. Decided on the text alone, without looking at the file system."""
    if folders is None or (HUB_ID.match(source) and not source.startswith((".", "~"))
                           and not inside(source, folders)):
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
