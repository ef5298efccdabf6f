"""Going on from a run, in the jobs layer: "train longer" continues a completed run at the next
iteration with its records, checkpoints and first start kept (trained here, in this process, on the
small config), its duration counts only the time a worker spent on it, the log tells each
iteration, presets of one's own are stored validated, and migration 0006 adds both to an older database."""
from datetime import timedelta

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import text

from jobs import api, db, progress_log, runs
from jobs.models import utcnow
from jobs.testing import SMALL, fake_record


@pytest.fixture(autouse=True)
def data(store):
    yield


def train_now(run_id: int) -> None:
    """What a worker does with a queued run, in this process: claim it, train, finish."""
    from jobs import child

    assert runs.claim(run_id)
    child.train(run_id)
    assert runs.finish(run_id, "completed")


def test_train_longer_continues_at_the_next_iteration_keeping_records_and_first_start(capsys):
    run_id = api.submit("configs/g2rpo.yaml", SMALL + ["train.iterations=2"])
    train_now(run_id)
    before = api.get_run(run_id)
    metrics = api.latest_metrics(run_id)
    evaluations, samples = api.evaluations(run_id), api.samples(run_id)
    assert [m["iteration"] for m in metrics] == [0, 1] and before["checkpoints"] == ["checkpoints/iter_000002"]
    with pytest.raises(api.JobError, match="is completed .2 of 2 iterations.; to go on, train it longer"):
        api.resume(run_id)  # nothing left to do: it would re-queue a run that trains nothing
    with pytest.raises(api.JobError, match="whole number of iterations >= 1"):
        api.train_longer(run_id, 0)
    capsys.readouterr()

    assert api.train_longer(run_id, 2) == 4
    queued = api.get_run(run_id)
    assert (queued["status"], queued["iterations"], queued["config"]["train"]["iterations"]) == ("queued", 4, 4)
    train_now(run_id)
    log = capsys.readouterr().out
    assert f"run {run_id}: continuing at iteration 3 of 4, from its checkpoint after 2 iterations" in log
    assert "[3/4] reward brightness " in log and "[4/4] reward brightness " in log and "[1/4]" not in log
    assert ", saturation " in log and "checkpoint checkpoints/iter_000004" in log

    after = api.get_run(run_id)
    assert after["status"] == "completed" and after["last_iteration"] == 3
    assert after["started_at"] == before["started_at"] and after["resumed_at"] > before["resumed_at"]
    assert after["active_seconds"] > before["active_seconds"] > 0
    assert after["checkpoints"] == ["checkpoints/iter_000002", "checkpoints/iter_000004"]
    now = api.latest_metrics(run_id)
    assert [m["iteration"] for m in now] == [0, 1, 2, 3] and now[:2] == metrics  # the old rows untouched
    assert api.evaluations(run_id)[:len(evaluations)] == evaluations
    assert api.samples(run_id)[:len(samples)] == samples
    assert [r["iteration"] for r in api.records(run_id)] == [0, 1, 2, 3]


def test_the_duration_counts_the_time_workers_spent_not_the_wait_between():
    run_id = api.submit("configs/g2rpo.yaml", SMALL)
    assert runs.duration(api.get_run(run_id)) is None  # never started
    assert runs.claim(run_id)
    start = api.get_run(run_id)
    assert runs.duration(start, now=start["resumed_at"] + timedelta(seconds=30)) == pytest.approx(30)
    runs._transition(run_id, ("running",), resumed_at=utcnow() - timedelta(seconds=100))
    assert runs.finish(run_id, "cancelled")
    first = api.get_run(run_id)
    assert first["active_seconds"] == pytest.approx(100, abs=2)
    api.resume(run_id)
    runs._transition(run_id, ("queued",), finished_at=utcnow() + timedelta(hours=5))  # as if it waited long
    assert runs.claim(run_id)
    runs._transition(run_id, ("running",), resumed_at=utcnow() - timedelta(seconds=20))
    assert runs.finish(run_id, "completed")
    run = api.get_run(run_id)
    assert run["started_at"] == first["started_at"] and runs.duration(run) == pytest.approx(120, abs=4)


def test_a_worker_that_died_counts_until_its_last_heartbeat():
    run_id = api.submit("configs/g2rpo.yaml", SMALL)
    assert runs.claim(run_id)
    now = utcnow()
    runs._transition(run_id, ("running",), resumed_at=now - timedelta(seconds=500),
                     heartbeat_at=now - timedelta(seconds=440))  # silent for 440 s: dead for the last ones
    assert runs.mark_interrupted() == [run_id]
    assert api.get_run(run_id)["active_seconds"] == pytest.approx(60, abs=2)


def test_the_log_lines_of_an_iteration():
    record = fake_record(0, k=2, lambdas=2, group=3, checkpoint=True)
    record["reward"] = {"adherence": {"mean": 0.5123, "std": 0.1}, "preference": {"mean": 0.25, "std": 0.0}}
    record["base_evaluation"] = {"trained": 0, "scores": {"adherence": 0.4}}
    record["evaluation"] = {"trained": 1, "scores": {"adherence": 0.61, "background": 0.3}}
    record["samples"] = ["samples/iter_000001/00.png"]
    lines = progress_log.lines(record, 20)
    assert lines[0] == "base model: held-out adherence 0.4"
    assert lines[1].startswith("[1/20] reward adherence 0.5123 ±0.1 preference 0.25 ±0 · held-out adherence 0.61, "
                               "background 0.3 · 0.5 s · 1,822 model evaluations · samples saved · checkpoint "
                               "checkpoints/iter_000001")
    assert lines[2].startswith("warning: [1] preference did not vary across the group: no learning signal")
    assert progress_log.start_line(3, 0, 20, "cpu") == "run 3: training iterations 1–20 on cpu"
    assert "nothing left to train" in progress_log.start_line(3, 20, 20, "cpu")


def test_presets_of_ones_own_are_validated_listed_and_replaced():
    from app import forms

    config = forms.preset_config("DiffusionNFT · built-in model")
    assert api.save_preset("  nft short ", config) == "nft short"
    config["train"]["iterations"] = 7
    api.save_preset("nft short", config)  # the same name: replaced
    assert api.list_presets() == ["nft short"]
    assert api.get_preset("nft short")["train"]["iterations"] == 7
    assert api.get_preset("nft short")["algorithm"]["name"] == "diffusionnft"  # stored resolved
    for name, message in (("", "name the preset"), ("<b>x</b>", "is not a preset name"), ("x" * 61, "not a preset")):
        with pytest.raises(api.JobError, match=message):
            api.save_preset(name, config)
    config["train"]["learning_rate"] = -1
    with pytest.raises(api.ConfigError, match="learning_rate"):
        api.save_preset("bad", config)
    assert api.list_presets() == ["nft short"]
    api.delete_preset("nft short")
    assert api.list_presets() == []
    with pytest.raises(api.JobError, match="no saved preset"):
        api.get_preset("nft short")


def test_migration_0006_gives_older_runs_their_time_and_adds_presets():
    run_id = api.submit("configs/g2rpo.yaml", SMALL)
    start = utcnow().replace(microsecond=0)
    runs._transition(run_id, ("queued",), status="completed", started_at=start, finished_at=start + timedelta(seconds=90))
    cfg = AlembicConfig(str(db.ALEMBIC_INI))
    with db.get_engine().begin() as c:
        cfg.attributes["connection"] = c
        command.downgrade(cfg, "0005")
        assert "active_seconds" not in {row[1] for row in c.execute(text("PRAGMA table_info(runs)"))}
        assert "presets" not in {row[0] for row in c.execute(text("SELECT name FROM sqlite_master"))}
        command.upgrade(cfg, "head")
    db.dispose_all()
    run = api.get_run(run_id)
    assert run["active_seconds"] == 90 and run["resumed_at"] == start and runs.duration(run) == 90
    assert api.list_presets() == []
