"""Job storage: migrations, WAL, and engine records stored without loss, on SQLite and PostgreSQL."""
import math
import subprocess
import sys
import threading
import time

import pytest
import torch
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.config import Config as AlembicConfig
from sqlalchemy import text
from sqlmodel import SQLModel

from engine.config import load_config
from engine.training.records import read_records
from jobs import db, queries, runs, settings
from jobs.models import Metric
from jobs.sink import RunSink
from jobs.testing import REPO, SMALL, fake_config, fake_record, one_torch_thread, throwaway_postgres


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path, monkeypatch):
    """An empty database of each kind (PostgreSQL: a throwaway database, dropped after)."""
    monkeypatch.setenv("G2RPO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("G2RPO_DATABASE_URL", raising=False)
    if request.param == "sqlite":
        yield "sqlite"
        db.dispose_all()
        return
    with throwaway_postgres() as url:
        if url is None:
            pytest.skip("PostgreSQL is not reachable (set G2RPO_TEST_POSTGRES to a server's URL)")
        monkeypatch.setenv("G2RPO_DATABASE_URL", url)
        yield "postgres"


def test_schema_is_migrated_and_matches_the_models(store):
    engine = db.get_engine()
    head = ScriptDirectory.from_config(AlembicConfig(str(db.ALEMBIC_INI))).get_current_head()
    with engine.connect() as c:
        assert MigrationContext.configure(c).get_current_revision() == head
        assert compare_metadata(MigrationContext.configure(c), SQLModel.metadata) == []  # no migration missing
        if store == "sqlite":
            assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert c.execute(text("PRAGMA busy_timeout")).scalar() == db.BUSY_TIMEOUT_S * 1000
    db.migrate(engine)  # idempotent


def test_engine_records_round_trip_exactly(store):
    from jobs import child

    cfg = load_config("configs/g2rpo.yaml", SMALL + ["train.iterations=3", "train.checkpoint_every=2",
                                                     "train.sample_every=2"])
    run_id = runs.create(cfg.to_dict())
    with one_torch_thread():
        child.train(run_id)  # what the worker's child process runs: the trainer with the database sink
    jsonl = read_records(settings.run_dir(run_id) / "records.jsonl")
    assert [r["iteration"] for r in jsonl] == [0, 1, 2]
    assert queries.records(run_id) == jsonl  # every number, every nested list, exactly

    metrics = queries.latest_metrics(run_id)
    assert [m["loss"] for m in metrics] == [r["loss"] for r in jsonl]
    assert [m["reward"] for m in metrics] == [r["reward"]["brightness"]["mean"] for r in jsonl]
    assert queries.latest_metrics(run_id, since_iteration=1)[0]["iteration"] == 2
    heat = queries.heatmap(run_id)
    assert heat["iteration"] == 2 and heat["reward_names"] == ["brightness"]
    for key in ("rewards", "advantages", "mixed_advantage", "branch_steps", "granularities"):
        assert heat[key] == jsonl[-1]["g2rpo"][key]
    history = queries.attribution_history(run_id)
    assert history["iterations"] == [0, 1, 2] and history["branch_steps"] == [0, 1]
    first = jsonl[0]["g2rpo"]["mixed_advantage"][0][0]
    assert history["abs_advantage"][0][0] == pytest.approx(sum(map(abs, first)) / len(first))
    finest = torch.tensor(jsonl[0]["g2rpo"]["rewards"][0][0][0][0])  # [m][p][k][λ=1][member]
    assert history["reward_std"][0][0] == pytest.approx(finest.std().item(), rel=1e-5)
    advantages = torch.tensor(jsonl[0]["g2rpo"]["advantages"][0][0][0])  # [λ][member]
    assert history["agreement"][0][0] == pytest.approx(torch.corrcoef(advantages)[0, 1].item(), rel=1e-5, abs=1e-6)
    evaluations = queries.evaluations(run_id)  # SMALL evaluates every iteration, and the base first
    assert [e["trained"] for e in evaluations] == [0, 1, 2, 3]
    assert evaluations[0]["scores"] == jsonl[0]["base_evaluation"]["scores"]
    assert evaluations[-1]["scores"] == jsonl[-1]["evaluation"]["scores"]
    assert set(evaluations[0]["scores"]) == {"brightness", "saturation"}
    samples = queries.samples(run_id)
    assert sorted({s["trained"] for s in samples}) == [0, 2, 3]
    assert all((settings.run_dir(run_id) / s["path"]).exists() for s in samples)
    assert [c["trained"] for c in queries.checkpoints(run_id)] == [2, 3]
    assert runs.get(run_id).last_iteration == 2 and runs.get(run_id).last_checkpoint == "checkpoints/iter_000003"


def test_resume_forgets_the_iterations_it_redoes(store):
    run_id = runs.create(fake_config())
    sink = RunSink(run_id)
    sink.begin(0)
    for it in range(6):
        sink.write(fake_record(it, k=2, lambdas=2, group=3, checkpoint=it in (1, 3, 5)))
    resumed = RunSink(run_id)
    resumed.begin(4)  # a trainer resuming from the checkpoint after 4 iterations redoes 4 and 5
    assert [m["iteration"] for m in queries.latest_metrics(run_id)] == [0, 1, 2, 3]
    assert [r["iteration"] for r in read_records(settings.run_dir(run_id) / "records.jsonl")] == [0, 1, 2, 3]
    assert queries.attribution_history(run_id)["iterations"] == [0, 1, 2, 3]
    assert [c["trained"] for c in queries.checkpoints(run_id)] == [2, 4]
    run = runs.get(run_id)
    assert run.last_iteration == 3 and run.last_checkpoint == "checkpoints/iter_000004"
    resumed.write(fake_record(4, k=2, lambdas=2, group=3))
    assert [m["iteration"] for m in queries.latest_metrics(run_id)] == [0, 1, 2, 3, 4]


def test_non_finite_numbers_are_stored_as_null(store):
    run_id = runs.create(fake_config())
    record = fake_record(0, k=2, lambdas=2, group=3)
    record["loss"], record["grad_norm"] = math.nan, math.inf
    record["g2rpo"]["mixed_advantage"][0][0][0] = math.nan
    sink = RunSink(run_id)
    sink.begin(0)
    sink.write(record)  # PostgreSQL's JSON would reject NaN; SQLite would break NOT NULL
    metric = queries.latest_metrics(run_id)[0]
    assert metric["loss"] is None and metric["grad_norm"] is None and metric["reward"] is not None
    assert queries.heatmap(run_id)["mixed_advantage"][0][0][0] is None


def test_the_ui_reads_while_a_writer_holds_a_transaction(tmp_path, monkeypatch):
    """WAL: a long write transaction (a worker's) does not block the UI's reads."""
    monkeypatch.setenv("G2RPO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("G2RPO_DATABASE_URL", raising=False)
    run_id = runs.create(fake_config())
    holding, release = threading.Event(), threading.Event()

    def writer():
        with db.session() as s:
            s.add(Metric(run_id=run_id, iteration=0, reward=0, loss=0, ratio_mean=1, ratio_min=1, ratio_max=1,
                         clip_fraction=0, approx_kl=0, grad_norm=0, seconds=0, model_evaluations=0, rewards={},
                         record={}))
            s.flush()  # the write lock is taken
            holding.set()
            release.wait(10)
            s.commit()

    thread = threading.Thread(target=writer)
    thread.start()
    assert holding.wait(10)
    start = time.perf_counter()
    assert queries.latest_metrics(run_id) == []  # the committed state, at once
    assert time.perf_counter() - start < 1.0
    release.set()
    thread.join()
    assert len(queries.latest_metrics(run_id)) == 1
    db.dispose_all()


def test_processes_starting_together_migrate_a_new_database_once(tmp_path):
    code = "from jobs import db; db.get_engine(); print('ok')"
    env = {"G2RPO_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    with db.create(f"sqlite:///{tmp_path / 'g2rpo.db'}").connect() as c:
        assert c.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        assert c.execute(text("SELECT count(*) FROM attributions")).scalar() == 0
