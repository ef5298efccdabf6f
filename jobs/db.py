"""The database: one engine per URL and process, migrated to the newest schema on first use.

SQLite (the default) runs in WAL mode with a busy timeout, so the UI reads while a worker writes
and concurrent writers wait instead of failing; sessions are short. PostgreSQL comes by URL.
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, text
from sqlmodel import Session

from jobs import settings

ALEMBIC_INI = Path(__file__).parent / "alembic.ini"
BUSY_TIMEOUT_S = 30
_engines: dict[str, Engine] = {}


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Switching a new file to WAL needs a lock the busy handler does not wait for: retry.
    for attempt in range(200):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except Exception as err:  # sqlite3.OperationalError: database is locked
            if "locked" not in str(err) or attempt == 199:
                raise
            time.sleep(0.05)
    cursor.close()


def _json(value) -> str:
    return json.dumps(value, separators=(",", ":"))  # no spaces: attribution arrays are most of the bytes


def create(url: str) -> Engine:
    """A new engine (no migration): SQLite gets WAL + busy timeout on every connection."""
    if url.startswith("sqlite"):
        engine = create_engine(url, json_serializer=_json,
                               connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, json_serializer=_json, pool_pre_ping=True)


@contextlib.contextmanager
def _migration_lock(engine: Engine, connection):
    """Two processes starting at once (UI and worker) must not both create the tables."""
    if engine.dialect.name == "postgresql":  # held until the migration's transaction ends
        connection.execute(text("SELECT pg_advisory_xact_lock(2510019820)"))
        yield
    elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        import fcntl  # SQLite's own DDL is not transactional under pysqlite: a file lock instead

        with open(f"{engine.url.database}.migrate.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
    else:
        yield


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply Alembic migrations up to `revision` (idempotent; cheap when already there)."""
    cfg = AlembicConfig(str(ALEMBIC_INI))
    with engine.begin() as connection, _migration_lock(engine, connection):
        cfg.attributes["connection"] = connection  # env.py runs on this connection
        command.upgrade(cfg, revision)


def get_engine(url: str | None = None) -> Engine:
    """The process's engine for `url` (default: settings), migrated on first use."""
    url = url or settings.database_url()
    if url not in _engines:
        engine = create(url)
        migrate(engine)
        _engines[url] = engine
    return _engines[url]


def session() -> Session:
    """A short session: `with db.session() as s: ...; s.commit()`. Objects stay readable after."""
    return Session(get_engine(), expire_on_commit=False)


def dispose_all() -> None:
    """Close every pooled connection (tests dropping a database; a child after fork)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
