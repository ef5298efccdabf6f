"""Downsampled curves: buckets folded at write time hold each value's mean, min and max over their
iterations, whichever way the iterations were stored, and the number of rows read stays bounded."""
import numpy as np
import pytest

from jobs import db, queries, rollup, runs
from jobs.sink import RunSink, insert_records
from jobs.testing import fake_config, fake_record

SHAPE = dict(k=2, lambdas=2, group=3)


def stored_run(records, config, one_by_one=False, resume_at=None) -> int:
    run_id = runs.create(config)
    with db.session() as s:
        if one_by_one:
            for record in records:
                insert_records(s, run_id, [record], config)
        else:
            insert_records(s, run_id, records, config)
        s.commit()
    if resume_at is not None:  # forget the tail, as a resume does, and store it again
        RunSink(run_id).begin(resume_at)
        with db.session() as s:
            insert_records(s, run_id, records[resume_at:], config)
            s.commit()
    return run_id


def test_rows_are_bounded_and_keep_mean_min_max_of_their_iterations(store, monkeypatch):
    monkeypatch.setattr(rollup, "MAX_POINTS", 10)
    config = fake_config()
    records = [fake_record(it, **SHAPE) for it in range(150)]
    records[77]["grad_norm"] = 1000.0  # a spike
    run_id = stored_run(records, config)
    curve = queries.curves(run_id)
    assert curve["every"] == 16 and curve["stored"] == 150  # 150 / 16 -> 10 rows; 150 / 4 would be 38
    rows = curve["rows"]
    assert [r["iteration"] for r in rows] == list(range(0, 150, 16)) and [r["count"] for r in rows] == [16] * 9 + [6]
    assert rows[-1]["last"] == 149
    full = queries.latest_metrics(run_id)
    for row in rows:
        inside = full[row["iteration"]:row["last"] + 1]
        for key in ("loss", "grad_norm", "reward"):
            values = np.array([m[key] for m in inside], dtype=np.float32).astype(np.float64)  # stored as float32
            assert row[key] == pytest.approx(values.mean(), rel=1e-12)
            assert (row["low"][key], row["high"][key]) == (values.min(), values.max())
        assert row["model_evaluations"] == sum(m["model_evaluations"] for m in inside)  # totals: axes add up
        assert row["seconds"] == pytest.approx(sum(m["seconds"] for m in inside), rel=1e-6)
        times = [m["record"]["time"]["rollout"] for m in inside]
        assert row["record"]["time"]["rollout"] == pytest.approx(np.mean(times), rel=1e-6)
        assert row["rewards"]["reward0"]["std"] == pytest.approx(np.mean([m["rewards"]["reward0"]["std"] for m in inside]),
                                                                rel=1e-6)
    assert rows[77 // 16]["high"]["grad_norm"] == 1000.0  # the spike stays visible in its row
    history = queries.attribution_history(run_id)
    assert history["iterations"] == [r["iteration"] for r in rows] and history["branch_steps"] == [0, 1]
    assert queries.curves(run_id, since_iteration=127)["rows"] == rows[-2:]  # a poll: the last rows only
    with pytest.raises(ValueError, match="every must be one of"):
        queries.curves(run_id, every=3)


def test_a_bucket_is_the_same_stored_in_a_batch_one_by_one_or_again_after_a_resume(store):
    config = fake_config()
    records = [fake_record(it, **SHAPE) for it in range(70)]
    records[20]["loss"] = None  # not finite: counted out of its bucket's mean
    runs_ = [stored_run(records, config), stored_run(records, config, one_by_one=True),
             stored_run(records, config, resume_at=37)]
    for every in (1, 4, 16, 64):
        first, *others = (queries.curves(run_id, every=every)["rows"] for run_id in runs_)
        assert all(rows == first for rows in others)
    assert queries.curves(runs_[0], every=4)["rows"][5]["loss"] is not None
    assert queries.curves(runs_[0], every=1)["rows"][20]["loss"] is None


def test_a_layout_grows_when_records_bring_new_values(store):
    config = fake_config()
    first = fake_record(0, **SHAPE)
    later = fake_record(1, **SHAPE) | {"kl": 0.25}  # e.g. a run resumed with kl_beta > 0
    run_id = stored_run([first, later], config, one_by_one=True)
    rows = queries.curves(run_id, every=4)["rows"]
    assert rows[0]["record"]["kl"] == 0.25 and rows[0]["low"]["record"]["kl"] == 0.25
    assert [r["record"].get("kl") for r in queries.curves(run_id)["rows"]] == [None, 0.25]


def test_the_read_benchmark_runs_and_stores_less_than_the_old_format(store, monkeypatch, capsys):
    """`python -m jobs.bench` on a short run: both formats stored, read while a writer writes."""
    from jobs import bench

    monkeypatch.setenv("G2RPO_DATA_DIR", "unused")  # the benchmark sets its own; restored after
    monkeypatch.setenv("G2RPO_DATABASE_URL", "unused")
    monkeypatch.setenv("G2RPO_MAX_ITERATIONS", "1000")  # it would raise the limit for the tests after it
    assert bench.main(["--lengths", "60", "--repeats", "2", "--pause", "0.05", "--no-postgres"]) == 0
    out = capsys.readouterr().out
    stored = out.split("bytes per iteration")[1].split()[:2]
    old, new = (float(n.replace(",", "")) for n in stored)
    assert 0 < new < old / 2  # even 60 iterations: a tenth of a megabyte of fixed pages is amortised
    assert "first load, mean (p95)" in out and "poll, mean (p95)" in out
    db.dispose_all()
