"""Migration 0003: a run stored in the old format (JSON member rows) reads back equal once converted,
and exactly as if it had been stored by today's code; the downgrade restores the old rows."""
import math

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import insert, select

from jobs import db, legacy, queries, settings
from jobs.models import Attribution, Run
from jobs.sink import insert_records
from jobs.testing import fake_config, fake_record, throwaway_postgres

SHAPE = dict(prompts=2, k=3, lambdas=2, group=4, models=2)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path, monkeypatch):
    monkeypatch.setenv("G2RPO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("G2RPO_DATABASE_URL", raising=False)
    db.dispose_all()
    if request.param == "sqlite":
        yield settings.database_url()
        db.dispose_all()
        return
    with throwaway_postgres() as pg:
        if pg is None:
            pytest.skip("PostgreSQL is not reachable (set G2RPO_TEST_POSTGRES to a server's URL)")
        monkeypatch.setenv("G2RPO_DATABASE_URL", pg)
        yield pg


def records_of_a_run(n: int) -> list[dict]:
    records = [fake_record(it, checkpoint=it % 7 == 6, **SHAPE) for it in range(n)]
    records[3]["loss"] = math.nan  # stored as None
    records[5]["g2rpo"]["mixed_advantage"][1][2][0] = math.inf
    for m in range(SHAPE["models"]):  # a group whose rewards are all equal: no spread, zero advantages, no correlation
        records[8]["g2rpo"]["rewards"][m][0][1] = [[1.5] * SHAPE["group"]] * SHAPE["lambdas"]
        records[8]["g2rpo"]["advantages"][m][0][1] = [[0.0] * SHAPE["group"]] * SHAPE["lambdas"]
    return records


def old_database(url: str, config: dict, runs: dict[str, list[dict]]) -> tuple:
    """A database at revision 0002 holding `runs` (name -> records) written by the old code."""
    engine = db.create(url)
    db.migrate(engine, legacy.REVISION)
    ids = {}
    with engine.begin() as c:
        for name, records in runs.items():
            ids[name] = c.execute(insert(Run).values(name=name, algorithm="g2rpo", model="builtin", config=config,
                                                     iterations=100, status="completed", cancel_requested=False,
                                                     attempts=1).returning(Run.id)).scalar()
            legacy.insert_records(c, ids[name], records, config)
    return engine, ids


def old_reads(engine, run_id: int) -> dict:
    with engine.connect() as c:
        return {"records": legacy.records(c, run_id), "metrics": legacy.latest_metrics(c, run_id),
                "heatmap": legacy.heatmap(c, run_id, 4), "history": legacy.attribution_history(c, run_id, every=1)}


def test_a_converted_run_reads_back_equal_and_as_if_stored_today(url):
    config = fake_config(models=SHAPE["models"])
    g2rpo = records_of_a_run(40)
    plain = [{k: v for k, v in r.items() if k != "g2rpo"} for r in fake_record_run(12)]  # a baseline's records
    engine, ids = old_database(url, config, {"g2rpo": g2rpo, "baseline": plain})
    before = {name: old_reads(engine, run_id) for name, run_id in ids.items()}
    assert before["g2rpo"]["records"][5]["g2rpo"]["mixed_advantage"][1][2][0] is None
    db.migrate(engine)  # what the first process opening the old database does
    engine.dispose()

    run_id = ids["g2rpo"]
    assert queries.records(run_id) == before["g2rpo"]["records"]  # every number, every nested list, exactly
    columns = lambda rows: [{k: v for k, v in row.items() if k != "record"} for row in rows]  # noqa: E731
    assert columns(queries.latest_metrics(run_id)) == columns(before["g2rpo"]["metrics"])  # its JSON: no repeats now
    assert queries.heatmap(run_id, 4) == before["g2rpo"]["heatmap"]
    assert queries.records(ids["baseline"]) == before["baseline"]["records"]
    old, new = before["g2rpo"]["history"], queries.attribution_history(run_id, every=1)
    assert new["iterations"] == old["iterations"] and new["branch_steps"] == old["branch_steps"]
    for value in queries.HISTORY_VALUES:  # statistics (float64) then, numpy now, float32 stored
        for a, b in zip(old[value], new[value], strict=True):
            assert b == pytest.approx(a, rel=1e-5, abs=1e-6)

    with db.session() as s:  # the same records stored now, as another run: everything read is the same
        today = s.scalar(insert(Run).values(name="today", algorithm="g2rpo", model="builtin", config=config,
                                            iterations=100, status="completed", cancel_requested=False,
                                            attempts=1).returning(Run.id))
        insert_records(s, today, g2rpo, config)
        s.commit()
    for every in (1, 4, 16):
        assert queries.curves(run_id, every=every)["rows"] == queries.curves(today, every=every)["rows"]
    assert queries.curves(ids["baseline"])["rows"][0]["loss"] == pytest.approx(plain[0]["loss"])
    assert queries.records(today) == queries.records(run_id)
    with db.session() as s:
        assert s.scalar(select(Attribution.members).where(Attribution.run_id == run_id).limit(1)) == SHAPE["group"]

    db.dispose_all()
    downgrade(url, legacy.REVISION)  # back to JSON member rows: what the old code reads is restored
    engine = db.create(url)
    assert old_reads(engine, run_id) == before["g2rpo"]
    engine.dispose()


def fake_record_run(n: int) -> list[dict]:
    return [fake_record(1000 + it, **SHAPE) | {"iteration": it} for it in range(n)]


def downgrade(url: str, revision: str) -> None:
    engine = db.create(url)
    cfg = AlembicConfig(str(db.ALEMBIC_INI))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)
    engine.dispose()
