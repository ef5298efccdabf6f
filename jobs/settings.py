"""Where jobs keep their state, from environment variables (read at call time, so tests and
workers can point one process at another folder without re-importing anything).

    G2RPO_DATA_DIR      folder for the SQLite database, the SQLite queue and the run folders (./data;
                        on a Hugging Face Space with persistent storage, /data/g2rpo)
    G2RPO_SPACE_STORAGE where a Space's persistent storage is mounted (/data; tests point it elsewhere)
    G2RPO_DATABASE_URL  e.g. postgresql+psycopg://user@host/db; default: SQLite in the data folder
    G2RPO_QUEUE_URL     e.g. redis://host:6379/0; default: a SQLite queue in the data folder
    G2RPO_QUEUE_NAME    the queue's name (several independent queues on one Redis); default g2rpo
    G2RPO_FILE_DIRS     more folders (separated by ':') that submitted configs may read files from
"""
from __future__ import annotations

import os
from pathlib import Path


class StorageError(RuntimeError):
    """The data folder or the database cannot be used (missing, unwritable, vanished, replaced)."""


SPACE_DATA = "g2rpo"  # the data folder inside a Space's persistent storage
SPACE_HF_HOME = ".huggingface"  # the Hugging Face cache beside it, as the Spaces documentation suggests


def space_storage() -> Path | None:
    """A Space's persistent storage, when this runs on a Space (SPACE_ID is set there) that has it
    mounted and writable; None elsewhere (a /data folder on another machine is not taken over)."""
    mount = Path(os.environ.get("G2RPO_SPACE_STORAGE", "/data"))
    if os.environ.get("SPACE_ID") and mount.is_dir() and os.access(mount, os.W_OK | os.X_OK):
        return mount
    return None


def use_space_storage() -> Path | None:
    """On a Space with persistent storage, put the Hugging Face cache (HF_HOME: downloaded weights,
    tokens, Trackio's projects) beside the data folder unless HF_HOME is set; returns the storage.
    Call it first thing in a process (before huggingface_hub is imported, which reads HF_HOME
    once); processes it starts inherit the setting."""
    mount = space_storage()
    if mount is not None:
        os.environ.setdefault("HF_HOME", str(mount / SPACE_HF_HOME))
    return mount


def data_dir() -> Path:
    """The data folder, created if missing; StorageError if it cannot be created or written."""
    mount = space_storage()
    default = mount / SPACE_DATA if mount is not None else Path("data")
    path = Path(os.environ.get("G2RPO_DATA_DIR", default)).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StorageError(f"the data folder {path} (G2RPO_DATA_DIR) cannot be created: "
                           f"{err.strerror or type(err).__name__}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StorageError(f"the data folder {path} (G2RPO_DATA_DIR) is not writable by this user")
    return path


def config_file_dirs() -> list[Path]:
    """The folders files named in a submitted config are read from: prompts/ of the working
    directory, the data folder's prompts/ and models/, and G2RPO_FILE_DIRS."""
    extra = [Path(p).expanduser() for p in os.environ.get("G2RPO_FILE_DIRS", "").split(os.pathsep) if p.strip()]
    return [Path("prompts").resolve(), data_dir() / "prompts", data_dir() / "models", *extra]


def database_url() -> str:
    return os.environ.get("G2RPO_DATABASE_URL") or f"sqlite:///{data_dir() / 'g2rpo.db'}"


def queue_url() -> str | None:
    return os.environ.get("G2RPO_QUEUE_URL") or None


def queue_name() -> str:
    return os.environ.get("G2RPO_QUEUE_NAME", "g2rpo")


def run_dir(run_id: int) -> Path:
    """A run's files: config.yaml, records.jsonl, log.txt, samples/, checkpoints/."""
    return data_dir() / "runs" / str(run_id)
