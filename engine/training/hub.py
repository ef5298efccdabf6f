"""Where weights come from: a local path or a Hugging Face hub id, checked before any job starts.

`check_source` answers "can this be loaded?" without loading anything and without torch, so the
UI and the jobs API can reject a config that names an unreachable model before it is queued. A
hub id counts as reachable when its file is in the local cache, or (unless HF_HUB_OFFLINE is set)
when the hub says the file exists and this user may read it.
"""
from __future__ import annotations

import contextvars
import os
import re
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_BY_TEXT = contextvars.ContextVar("sources_by_text", default=False)


def looks_like_hub_id(source: str) -> bool:
    """'owner/name', by the text alone ('x/..' is a path, not a repository)."""
    return bool(HUB_ID.match(source)) and not any(part in (".", "..") for part in source.split("/"))


@contextmanager
def sources_by_text():
    """Within it, `is_local` decides by the text alone: 'owner/name' is a hub id even if a folder of
    that name exists here. For configs someone else submitted: looking would tell them whether the
    path exists (engine/config/files.py refuses local paths outside the allowed folders by their text)."""
    token = _BY_TEXT.set(True)
    try:
        yield
    finally:
        _BY_TEXT.reset(token)


def is_local(source: str) -> bool:
    """A path (absolute, relative with a slash prefix, ~, or an existing file/folder), not a hub id."""
    if source.startswith(("/", "./", "../", "~")) or not looks_like_hub_id(source):
        return True
    return not _BY_TEXT.get() and Path(source).expanduser().exists()


def check_source(source: str, required: str, what: str) -> str | None:
    """None when `required` (a file inside the folder or repo, "" for a file path itself) can be
    loaded from `source`; otherwise a message that says what to download or install."""
    if is_local(source):
        path = Path(source).expanduser()
        if not path.exists():
            return f"{what}: no such file or folder {source!r} (and it is not a hub id like 'owner/name')"
        if required and not (path / required).exists():
            return f"{what}: {source!r} has no {required}; point it at the folder that holds it"
        return None
    return _check_hub(source, required or "", what)


@lru_cache(maxsize=256)
def _found_on_hub(repo: str, filename: str) -> bool:
    """Positive answers only are cached: a download or a login between two checks must count."""
    from huggingface_hub import file_exists

    if not file_exists(repo, filename):
        raise FileNotFoundError(filename)
    return True


def _check_hub(repo: str, filename: str, what: str) -> str | None:
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo, filename), str):
        return None
    fetch = (f"download it first (`hf download {repo}`, after accepting its licence on "
             f"https://huggingface.co/{repo} if it is gated) or set a local folder instead")
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True", "YES", "ON"):
        return f"{what}: {repo!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; {fetch}"
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        _found_on_hub(repo, filename)
        return None
    except GatedRepoError:
        return (f"{what}: {repo!r} is gated: accept its licence on https://huggingface.co/{repo}, then log in "
                f"(`hf auth login` or HF_TOKEN) on the machine that trains, or {fetch}")
    except RepositoryNotFoundError:
        return f"{what}: no model {repo!r} on the Hugging Face hub (or it is private and you are not logged in)"
    except FileNotFoundError:
        return f"{what}: {repo!r} on the hub has no {filename}; is it the right kind of model?"
    except Exception as err:  # no network, DNS, timeouts: all mean "cannot be loaded from here"
        return f"{what}: cannot reach the Hugging Face hub to find {repo!r} ({type(err).__name__}); {fetch}"


def missing_package(module: str, install: str, what: str) -> str | None:
    """None when `module` can be imported; else a message naming what to install (no import done)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return f"{what} needs the optional package {install!r}: pip install {install} (or pip install -r requirements-rewards.txt)"
    return None
