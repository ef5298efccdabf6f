"""The database: one engine per URL and process, migrated to the newest schema on first use.

SQLite (the default) runs in WAL mode with a busy timeout, so the UI reads while a worker writes
and concurrent writers wait instead of failing; sessions are short. PostgreSQL comes by URL.

A process remembers which database it opened (the SQLite file's inode, PostgreSQL's database oid)
and every session checks it is still that one: a database deleted or replaced under a running app
or worker stops them with a StorageError instead of letting each write to a different one.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from jobs import settings
from jobs.settings import StorageError

ALEMBIC_INI = Path(__file__).parent / "alembic.ini"
BUSY_TIMEOUT_S = 30
SQLITE_PAGE_BYTES = 8192
SERVER_CHECK_S = 5.0  # how often a server database's identity is checked (a query); SQLite: every session
_engines: dict[str, Engine] = {}
_identities: dict[str, tuple] = {}  # url -> what the database was when this process opened it
_checked: dict[str, float] = {}
_broken: dict[str, str] = {}  # url -> why it can no longer be used


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    # A new file only (an existing one keeps its pages): 8 KB pages hold three of a default G²RPO
    # run's 2.7 KB member-array rows where 4 KB pages hold one, a third less space.
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Switching a new file to WAL needs a lock the busy handler does not wait for: retry, as long
    # as the busy timeout (another process may be migrating the new file, slowly on a busy machine).
    attempts = int(BUSY_TIMEOUT_S / 0.05)
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except Exception as err:  # sqlite3.OperationalError: database is locked
            if "locked" not in str(err) or attempt == attempts - 1:
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
def _file_lock(engine: Engine):
    """SQLite: two processes starting at once (UI and worker) must not both create the tables.
    pysqlite runs DDL outside the transaction, so the lock is a file lock, held until the
    migration's transaction has committed (released before the commit, a second process saw the
    tables but not yet their version, and created them again)."""
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        import fcntl

        with open(f"{engine.url.database}.migrate.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
    else:
        yield


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply Alembic migrations up to `revision` (idempotent; cheap when already there)."""
    cfg = AlembicConfig(str(ALEMBIC_INI))
    with _file_lock(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":  # held until this transaction ends
            connection.execute(text("SELECT pg_advisory_xact_lock(2510019820)"))
        cfg.attributes["connection"] = connection  # env.py runs on this connection
        command.upgrade(cfg, revision)


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def get_engine(url: str | None = None) -> Engine:
    """The process's engine for `url` (default: settings), migrated on first use. StorageError if
    the database cannot be opened, or is no longer the one this process opened."""
    url = url or settings.database_url()
    if url not in _engines:
        try:
            engine = create(url)
            migrate(engine)
            _identities[url] = identity(engine)
        except (OSError, SQLAlchemyError) as err:
            reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0][:200]
            raise StorageError(f"cannot open the database {shown(url)}: {reason}") from None
        _engines[url] = engine
        _checked[url] = time.monotonic()
    check(url)
    return _engines[url]


def identity(engine: Engine) -> tuple:
    """What makes this database this one: the SQLite file's inode, PostgreSQL's database oid."""
    if engine.dialect.name == "sqlite":
        if engine.url.database in (None, "", ":memory:"):
            return ()
        stat = os.stat(engine.url.database)
        return stat.st_dev, stat.st_ino
    if engine.dialect.name == "postgresql":
        with engine.connect() as c:
            return (c.execute(text("SELECT oid FROM pg_database WHERE datname = current_database()")).scalar(),)
    return ()


def check(url: str) -> None:
    """StorageError if the database at `url` vanished or was replaced since this process opened it."""
    if url in _broken:
        raise StorageError(_broken[url])
    engine, now = _engines[url], time.monotonic()
    if engine.dialect.name != "sqlite" and now - _checked[url] < SERVER_CHECK_S:
        return
    _checked[url] = now
    try:
        current = identity(engine)
    except (OSError, SQLAlchemyError):
        current = None
    if current != _identities[url]:
        what = "vanished" if current is None else "was replaced by another one"
        _broken[url] = (f"the database {shown(url)} {what} while this process ran; it stops here rather than "
                        "write where other processes no longer read: restart the app and the workers")
        raise StorageError(_broken[url])


def session() -> Session:
    """A short session: `with db.session() as s: ...; s.commit()`. Objects stay readable after."""
    return Session(get_engine(), expire_on_commit=False)


def dispose_all() -> None:
    """Close every pooled connection (tests dropping a database; a child after fork)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _identities.clear()
    _broken.clear()
