"""The jobs API and CLI without a worker: validation before queueing, run states, interrupted-run
detection, export. (The queue tests with real worker processes are in test_jobs_queue.py.)"""
import json
import os
import subprocess
import sys
import zipfile
from datetime import timedelta

import pytest

from engine.config import ConfigError, load_config
from jobs import api, child, db, queries, queue, runs, settings
from jobs.__main__ import main as cli
from jobs.models import Run, utcnow
from jobs.sink import RunSink
from jobs.testing import REPO, SMALL, fake_config, fake_record, one_torch_thread


@pytest.fixture(autouse=True)
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("G2RPO_DATA_DIR", str(tmp_path))
    for var in ("G2RPO_DATABASE_URL", "G2RPO_QUEUE_URL", "G2RPO_QUEUE_NAME"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path
    db.dispose_all()


def set_running(run_id, **values):
    with db.session() as s:
        run = s.get(Run, run_id)
        for key, value in {"status": "running", "heartbeat_at": utcnow(), **values}.items():
            setattr(run, key, value)
        s.commit()


def test_invalid_configs_are_rejected_before_anything_is_stored_or_queued():
    with pytest.raises(ConfigError, match="granularities"):
        api.submit("configs/g2rpo.yaml", SMALL + ["algorithm.granularities=[0]"])
    with pytest.raises(ConfigError, match="unknown algorithm"):
        api.submit({"algorithm": {"name": "ppo"}})
    with pytest.raises(ConfigError, match="cannot read"):
        api.submit("configs/no-such-file.yaml")
    assert api.list_runs() == [] and queue.pending() == 0


def test_submit_cancel_resume_delete():
    run_id = api.submit("configs/g2rpo.yaml", SMALL + ["train.iterations=5"], name="try")
    run = api.get_run(run_id)
    assert (run["status"], run["name"], run["iterations"], run["model"]) == ("queued", "try", 5, "tiny-flux")
    assert run["config"]["algorithm"]["eta"] == 0.7  # stored resolved
    assert queue.pending() == 1
    assert api.cancel(run_id) == "cancelled"  # a queued run: at once (its message is skipped)
    with pytest.raises(api.JobError, match="nothing to cancel"):
        api.cancel(run_id)
    api.resume(run_id, ["train.iterations=8"])
    assert api.get_run(run_id)["status"] == "queued" and api.get_run(run_id)["iterations"] == 8
    with pytest.raises(api.JobError, match="only"):
        api.resume(run_id)  # already queued
    api.cancel(run_id)
    with pytest.raises(ConfigError, match="iterations"):
        api.resume(run_id, ["train.iterations=0"])  # overrides are validated too
    assert api.get_run(run_id)["status"] == "cancelled"
    with pytest.raises(api.JobError, match="cancel it first"):
        api.delete(api.submit(None, SMALL))
    api.delete(run_id)
    assert not settings.run_dir(run_id).exists()
    with pytest.raises(api.JobError, match="no run"):
        api.get_run(run_id)


def test_runs_whose_worker_is_gone_are_marked_interrupted():
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid is free
    alive = subprocess.Popen(["sleep", "30"])
    try:
        dead_worker, live_worker, stale, fresh, cancelling = (runs.create(fake_config()) for _ in range(5))
        set_running(dead_worker, worker_host=runs.HOST, worker_pid=gone.pid)
        set_running(cancelling, worker_host=runs.HOST, worker_pid=gone.pid, cancel_requested=True)
        set_running(live_worker, worker_host=runs.HOST, worker_pid=alive.pid)
        set_running(stale, worker_host="elsewhere", worker_pid=1, heartbeat_at=utcnow() - 2 * runs.STALE_AFTER)
        set_running(fresh, worker_host="elsewhere", worker_pid=1)
        assert runs.mark_interrupted(starting_worker=True) == [dead_worker, stale, cancelling]
        statuses = {r["id"]: r["status"] for r in api.list_runs()}
        assert statuses == {dead_worker: "interrupted", live_worker: "running", stale: "interrupted",
                            fresh: "running", cancelling: "cancelled"}  # the cancel it was waiting for
        assert "resume" in api.get_run(dead_worker)["error"]
        set_running(fresh, heartbeat_at=utcnow() - timedelta(hours=1))  # its machine died an hour ago
        assert api.get_run(fresh)["status"] == "interrupted"  # the UI's read notices
        api.resume(dead_worker)
        assert api.get_run(dead_worker)["status"] == "queued"
    finally:
        alive.kill()
        alive.wait()


def test_a_checkpoint_whose_record_was_lost_is_dropped_before_resuming():
    run_id = runs.create(fake_config())
    sink = RunSink(run_id)
    sink.begin(0)
    sink.write(fake_record(0, k=2, lambdas=2, group=3, checkpoint=True))  # checkpoints/iter_000001, recorded
    root = settings.run_dir(run_id) / "checkpoints"
    for name in ("iter_000001", "iter_000002"):  # iter_000002: saved, then killed before its record
        (root / name).mkdir(parents=True)
    child.drop_unrecorded_checkpoints(run_id)
    assert sorted(p.name for p in root.iterdir()) == ["iter_000001"]


def test_export_has_config_metrics_records_and_the_lora(data):
    from engine.training.checkpoint import LORA_WEIGHTS
    from jobs.export import LORA_WEIGHTS as EXPORTED

    cfg = load_config("configs/g2rpo.yaml", SMALL + ["train.iterations=2", "train.checkpoint_every=2"])
    run_id = runs.create(cfg.to_dict())
    with one_torch_thread():
        child.train(run_id)
    api.add_evaluation(run_id, {"brightness": 0.5}, checkpoint="checkpoints/iter_000002", seeds=2)
    path = api.export(run_id)
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        assert {"run.json", "config.yaml", "metrics.csv", "records.jsonl", "evaluations.json",
                f"lora/{LORA_WEIGHTS}"} <= names and EXPORTED == LORA_WEIGHTS
        assert len(z.read("metrics.csv").decode().splitlines()) == 1 + 2
        assert [json.loads(line) for line in z.read("records.jsonl").decode().splitlines()] == queries.records(run_id)
        assert json.loads(z.read("evaluations.json"))[-1]["scores"] == {"brightness": 0.5}  # after the trainer's
        assert any(n.startswith("samples/") for n in names)
    folder = api.export(run_id, data / "exported")
    assert (folder / "lora" / LORA_WEIGHTS).stat().st_size == (settings.run_dir(run_id) / "checkpoints" /
                                                             "iter_000002" / LORA_WEIGHTS).stat().st_size


def test_cli(capsys):
    assert cli(["submit", "configs/g2rpo.yaml", "--set", "algorithm.granularities=[0]"]) == 2
    assert "granularities" in capsys.readouterr().err
    assert cli(["status", "42"]) == 2 and "no run 42" in capsys.readouterr().err
    overrides = sum((["--set", o] for o in [*SMALL, "train.iterations=7"]), [])
    assert cli(["submit", "configs/g2rpo.yaml", *overrides, "--name", "cli"]) == 0
    assert "queued run 1" in capsys.readouterr().out
    assert cli(["list"]) == 0 and "queued" in capsys.readouterr().out
    assert cli(["status", "1"]) == 0 and "0/7 iterations" in capsys.readouterr().out
    assert cli(["cancel", "1"]) == 0 and "cancelled" in capsys.readouterr().out
    assert cli(["cancel", "1"]) == 2
    assert cli(["resume", "1", "--set", "train.iterations=3"]) == 0
    with pytest.raises(SystemExit) as exit:
        cli(["frobnicate"])
    assert exit.value.code == 2
    env = {**os.environ, "G2RPO_DATA_DIR": str(settings.data_dir())}
    done = subprocess.run([sys.executable, "-m", "jobs", "status", "7"], cwd=REPO, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 2 and "no run 7" in done.stderr


def test_an_unreachable_queue_is_reported_and_the_run_can_be_resumed_later(monkeypatch, capsys):
    monkeypatch.setenv("G2RPO_QUEUE_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    with pytest.raises(api.QueueError, match="resume 1"):
        api.submit("configs/g2rpo.yaml", SMALL)
    run = api.get_run(1)
    assert run["status"] == "failed" and "could not queue" in run["error"]
    assert cli(["resume", "1"]) == 1 and "could not be queued" in capsys.readouterr().err
    monkeypatch.delenv("G2RPO_QUEUE_URL")
    api.resume(1)
    assert api.get_run(1)["status"] == "queued" and queue.pending() == 1
