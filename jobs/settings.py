"""Where jobs keep their state, from environment variables (read at call time, so tests and
workers can point one process at another folder without re-importing anything).

    G2RPO_DATA_DIR      folder for the SQLite database, the SQLite queue and the run folders (./data)
    G2RPO_DATABASE_URL  e.g. postgresql+psycopg://user@host/db; default: SQLite in the data folder
    G2RPO_QUEUE_URL     e.g. redis://host:6379/0; default: a SQLite queue in the data folder
    G2RPO_QUEUE_NAME    the queue's name (several independent queues on one Redis); default g2rpo
"""
from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    path = Path(os.environ.get("G2RPO_DATA_DIR", "data")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    return os.environ.get("G2RPO_DATABASE_URL") or f"sqlite:///{data_dir() / 'g2rpo.db'}"


def queue_url() -> str | None:
    return os.environ.get("G2RPO_QUEUE_URL") or None


def queue_name() -> str:
    return os.environ.get("G2RPO_QUEUE_NAME", "g2rpo")


def run_dir(run_id: int) -> Path:
    """A run's files: config.yaml, records.jsonl, log.txt, samples/, checkpoints/."""
    return data_dir() / "runs" / str(run_id)
