"""The per-verifier attribution a G²RPO run stores (engine record -> database -> Monitor): every
member's verifier components, each step's share of each score's variance, and the views drawing it."""
import numpy as np
import pytest

from app import attribution, monitor, monitor_tab
from engine.config import load_config
from engine.training.records import read_records
from jobs import api, db, queries, runs, settings
from jobs.sink import RunSink
from jobs.testing import SMALL, fake_config, fake_record, one_torch_thread


@pytest.fixture
def sqlite_store(tmp_path, monkeypatch):
    monkeypatch.setenv("G2RPO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("G2RPO_DATABASE_URL", raising=False)
    yield
    db.dispose_all()


def test_a_g2rpo_run_stores_every_members_verifier_scores_and_the_monitor_draws_their_shares(sqlite_store):
    from jobs import child

    cfg = load_config("configs/g2rpo.yaml", SMALL + ["train.iterations=2", "train.eval_every=0",
                                                     "train.sample_every=1000", "train.checkpoint_every=1000"])
    run_id = runs.create(cfg.to_dict())
    with one_torch_thread():
        child.train(run_id)
    jsonl = read_records(settings.run_dir(run_id) / "records.jsonl")
    g = jsonl[0]["g2rpo"]
    assert g["component_names"] == ["background", "colour", "shape", "count"]
    assert np.array(g["components"]).shape == (4, 1, 2, 3)  # [component][prompt][k][member]
    assert queries.records(run_id) == jsonl  # stored in the member blob and read back exactly

    history = queries.attribution_history(run_id)
    first = history["variance"][0]
    assert list(first) == ["brightness", "background", "colour", "shape", "count"]
    for c, name in enumerate(g["component_names"]):
        expected = np.var(np.array(g["components"][c][0]), axis=-1, ddof=1)  # [k]
        assert first[name] == pytest.approx(expected.tolist(), rel=1e-5, abs=1e-9)
    finest = np.array(g["rewards"][0][0])[:, 0]  # brightness [k][λ=1][member]
    assert first["brightness"] == pytest.approx(np.var(finest, axis=-1, ddof=1).tolist(), rel=1e-5)

    view, _ = monitor.poll(None, run_id)
    fig = monitor_tab.step_view(view, "variance share per step (%)")
    assert [t.name for t in fig.data] == list(first)
    for trace in fig.data:  # every column of a block sums to 100% (or the score never varied there)
        for column in zip(*trace.z):
            known = [v for v in column if v is not None]
            assert not known or sum(known) == pytest.approx(100.0)
    assert fig.data[0].colorbar.ticksuffix == "%" and fig.data[0].zmin == 0
    window = api.attribution_window(run_id, None, 2)
    assert set(window["cells"][0]["variance"]) == set(first)
    table = attribution.share_table(window)
    assert table.count("\n| ") == 1 + len(history["branch_steps"]) - 1 + 1  # header and one row per k
    assert "| k | brightness | background | colour | shape | count |" in table


def test_runs_stored_without_components_read_as_before(sqlite_store):
    run_id = runs.create({**fake_config(iterations=10), "algorithm": {"name": "g2rpo"}})
    sink = RunSink(run_id)
    sink.begin(0)
    for it in range(3):
        sink.write(fake_record(it, prompts=2, k=2, lambdas=2, group=3))
    assert "components" not in queries.heatmap(run_id)
    history = queries.attribution_history(run_id)
    assert [list(row) for row in history["variance"]] == [["reward0"]] * 3
    fig = attribution.share_map(history)
    assert [t.name for t in fig.data] == ["reward0"]


def test_the_share_map_pools_a_window_before_dividing_and_marks_a_score_that_never_varies():
    history = {"iterations": list(range(10)), "every": 1, "branch_steps": [0, 1],
               "variance": [{"a": [1.0, 3.0], "b": [0.0, 0.0]}] * 5 + [{"a": [3.0, 1.0], "b": [0.0, 0.0]}] * 5}
    fig = attribution.share_map(history)
    a, b = fig.data
    assert list(a.x) == ["0–4", "5–9"]  # windows of 5 iterations
    assert a.z[0] == [25.0, 75.0] and a.z[1] == [75.0, 25.0]
    assert b.z[0] == [None, None]  # never varies: no share, not 50/50
    assert attribution.share_map({"iterations": [0], "branch_steps": [0], "variance": [{}]}).layout.annotations[0].text.startswith("no per-step")
