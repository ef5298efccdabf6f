"""`python app.py` as a process of its own, as on a Space: a database deleted under it stops its
worker and makes the app refuse instead of splitting, and killing the app takes the Compare
sampler (and multiprocessing's resource tracker) with it."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from jobs import api, child, db, runs
from jobs.settings import StorageError
from jobs.testing import REPO, SMALL, one_torch_thread, wait_for
from tests.test_app_api import PRESET, form


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                found[int(entry.name)] = (ppid, (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except (OSError, IndexError, ValueError):
                pass
    return found


def alive(pid: int) -> bool:
    return runs.pid_alive(pid)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """A data folder holding a run with a checkpoint, and `python app.py` (embedded worker) on it,
    with the sampler started by one comparison."""
    data = tmp_path_factory.mktemp("app-process")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("G2RPO_DATA_DIR", str(data))
        for var in ("G2RPO_DATABASE_URL", "G2RPO_QUEUE_URL", "G2RPO_PASSWORD"):
            mp.delenv(var, raising=False)
        run_id = runs.create(api.check_config("configs/g2rpo.yaml", SMALL + ["train.iterations=1",
                                                                            "train.checkpoint_every=1"]))
        assert runs.claim(run_id)
        with one_torch_thread():
            child.train(run_id)
        runs.finish(run_id, "completed")
        db.dispose_all()
    from app.server import free_port

    port = free_port()
    log = open(data / "app.log", "w")
    env = {**os.environ, "G2RPO_DATA_DIR": str(data), "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    for var in ("G2RPO_DATABASE_URL", "G2RPO_QUEUE_URL", "G2RPO_PASSWORD", "G2RPO_WORKER"):
        env.pop(var, None)
    proc = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"

    def up():
        assert proc.poll() is None, (data / "app.log").read_text()[-3000:]
        try:
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 180, interval=0.5, message="the app to serve")
        wait_for(lambda: "worker ready" in (data / "app.log").read_text(), 180, message="the worker")
        client = Client(url, verbose=False)
        client.predict(run_id, None, "a red circle on a black background", 0, api_name="/compare")
        kids = {pid: cmd for pid, (ppid, cmd) in processes().items() if ppid == proc.pid}
        yield {"proc": proc, "client": client, "data": data, "log": data / "app.log", "kids": kids}
        client.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def the(kids: dict, marker: str) -> int:
    (pid,) = [pid for pid, cmd in kids.items() if marker in cmd]
    return pid


def test_a_vanished_database_stops_the_worker_and_the_app_refuses_to_store(app):
    worker = the(app["kids"], "jobs.worker")
    client, database = app["client"], app["data"] / "g2rpo.db"
    assert client.predict(api_name="/runs")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    with pytest.raises(Exception, match="vanished while this process ran") as err:
        client.predict(api_name="/runs")
    assert "Traceback" not in str(err.value)
    with pytest.raises(Exception, match="vanished"):
        client.predict(PRESET, "after", *form(), api_name="/submit")
    assert not database.exists()  # nothing was written to a new, empty database
    wait_for(lambda: not alive(worker), 30, message="the worker to stop")
    assert "stopping: the database" in app["log"].read_text()


def test_the_sampler_and_its_resource_tracker_die_with_the_app(app):
    sampler, tracker = the(app["kids"], "spawn_main"), the(app["kids"], "resource_tracker")
    assert alive(sampler) and alive(tracker)
    os.kill(app["proc"].pid, signal.SIGTERM)  # `kill <app pid>`: no atexit handler runs
    app["proc"].wait(30)
    start = time.monotonic()
    wait_for(lambda: not alive(sampler) and not alive(tracker), 15, message="the sampler and tracker to exit")
    print(f"\nsampler and resource tracker gone {time.monotonic() - start:.1f} s after the app")


def test_a_replaced_database_is_noticed_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("G2RPO_DATA_DIR", str(tmp_path))
    for var in ("G2RPO_DATABASE_URL", "G2RPO_QUEUE_URL"):
        monkeypatch.delenv(var, raising=False)
    try:
        api.list_runs()
        database = tmp_path / "g2rpo.db"
        os.rename(database, tmp_path / "old.db")
        import shutil

        shutil.copy(tmp_path / "old.db", database)  # another file with the same content
        with pytest.raises(StorageError, match="was replaced by another one"):
            api.list_runs()
        with pytest.raises(StorageError):  # and stays refused
            api.submit("configs/g2rpo.yaml", SMALL)
    finally:
        db.dispose_all()


def test_a_postgresql_database_dropped_and_created_again_is_noticed(tmp_path, monkeypatch):
    from sqlalchemy import create_engine, make_url, text

    from jobs.testing import POSTGRES_ADMIN_URL, throwaway_postgres

    with throwaway_postgres() as url:
        if url is None:
            pytest.skip("PostgreSQL is not reachable (set G2RPO_TEST_POSTGRES to a server's URL)")
        monkeypatch.setenv("G2RPO_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("G2RPO_DATABASE_URL", url)
        monkeypatch.setattr(db, "SERVER_CHECK_S", 0.0)
        api.list_runs()
        name = make_url(url).database
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:  # what a restore from a backup, or a mistaken reset, does
            c.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
            c.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        with pytest.raises(StorageError, match="was replaced by another one"):
            api.list_runs()
