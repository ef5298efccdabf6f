"""The Monitor's incremental polling: only new iterations are read, and the view equals a fresh read."""
import pytest

from app import monitor
from jobs import api, rollup, runs
from jobs.sink import RunSink
from jobs.testing import fake_config, fake_record


def test_polling_reads_only_what_is_new_and_matches_a_fresh_read(store, monkeypatch):
    monkeypatch.setattr(rollup, "MAX_POINTS", 4)  # rows of 4 iterations from the 5th on (1,000 and 4,000 live)
    run_id = runs.create(fake_config(iterations=2000))
    sink = RunSink(run_id)
    sink.begin(0)
    view = None
    for it in range(11):
        sink.write(fake_record(it, k=3, lambdas=2, group=4))
        view, changed = monitor.poll(view, run_id)
        assert changed
        fresh, _ = monitor.poll(None, run_id)
        assert view == fresh  # polled row by row, across the change of width, as a page opening now reads it
    view, changed = monitor.poll(view, run_id)
    assert not changed  # nothing new: the page sends nothing
    assert [m["iteration"] for m in view["metrics"]] == [0, 4, 8] and view["every"] == 4
    assert [m["count"] for m in view["metrics"]] == [4, 4, 3]
    assert view["history"] == api.attribution_history(run_id) and view["history"]["iterations"] == [0, 4, 8]
    assert view["latest"]["iteration"] == 10
    assert "11/2000 iterations" in monitor.status_line(view)
    assert f"reward {view['latest']['reward']:.4f}" in monitor.status_line(view)  # the latest, not the row's mean


def test_a_resume_that_redoes_iterations_is_redrawn(store):
    run_id = runs.create(fake_config())
    sink = RunSink(run_id)
    sink.begin(0)
    for it in range(6):
        sink.write(fake_record(it, k=2, lambdas=2, group=3, checkpoint=it == 3))
    view, _ = monitor.poll(None, run_id)
    RunSink(run_id).begin(4)  # resumed from the checkpoint after 4 iterations: 4 and 5 are forgotten
    view, changed = monitor.poll(view, run_id)
    assert changed and [m["iteration"] for m in view["metrics"]] == [0, 1, 2, 3]
    assert view["history"]["iterations"] == [0, 1, 2, 3]
    assert "4/100 iterations" in monitor.status_line(view)
