"""The overlay tab's table and reward choices, on hand-made runs (the API test draws real ones)."""
import pytest

from app import overlay_tab


def run(label, rewards, evaluations=()):
    metrics = [{"iteration": i, "reward": 2 * r, "model_evaluations": 100, "rewards": {"preference": {"mean": r}}}
               for i, r in enumerate(rewards)]
    return {"label": label, "metrics": metrics, "evaluations": list(evaluations)}


def test_summary_averages_the_last_iterations_and_shows_the_last_evaluation():
    a = run("#1 g2rpo", [0.0] * 5 + [0.5] * 10, [{"trained": 15, "scores": {"preference": 0.6, "shape": 0.3}}])
    b = run("#2 dancegrpo", [0.1, 0.3])
    table = overlay_tab.summary([a, b], "preference").splitlines()
    assert table[2] == "| \\#1 g2rpo | 15 | 1,500 | 0.5000 | 0.6000 |"  # a name is text: escaped
    assert table[3] == "| \\#2 dancegrpo | 2 | 200 | 0.2000 | – |"
    assert overlay_tab.summary([a], "total").splitlines()[2] == "| \\#1 g2rpo | 15 | 1,500 | 1.0000 | – |"


def test_reward_choices_cover_training_and_evaluation_rewards():
    a = run("#1", [0.1], [{"trained": 1, "scores": {"preference": 0.2, "shape": 0.3}}])
    assert overlay_tab.reward_names([a, run("#2", [])]) == ["preference", "shape", "total"]


def test_running_runs_can_be_overlaid(store):
    from jobs import runs
    from jobs.models import utcnow
    from jobs.testing import fake_config

    queued, running = runs.create(fake_config()), runs.create(fake_config())
    runs._transition(running, ("queued",), status="running", heartbeat_at=utcnow())
    assert [run_id for _, run_id in overlay_tab.overlay_choices()] == [running]  # not the one yet to start


def seeded(label, seed, rewards, algorithm="g2rpo", evaluations=()):
    config = {"algorithm": {"name": algorithm, "group_size": 8}, "train": {"seed": seed, "iterations": 10}}
    return {**run(label, rewards, evaluations), "config": config}


def test_runs_that_differ_only_in_their_seed_form_one_envelope():
    from app import envelopes

    a = seeded("#1 g2rpo seed 0", 0, [0.1, 0.2, 0.3], evaluations=[{"trained": 3, "scores": {"shape": 0.2}}])
    b = seeded("#2 g2rpo seed 1", 1, [0.3, 0.4], evaluations=[{"trained": 3, "scores": {"shape": 0.4}}])  # still running
    c = seeded("#3 dancegrpo", 0, [0.5, 0.5, 0.5], algorithm="dancegrpo")
    grouped = envelopes.groups([a, c, b])
    assert [[r["label"] for r in g] for g in grouped] == [["#1 g2rpo seed 0", "#2 g2rpo seed 1"], ["#3 dancegrpo"]]
    assert envelopes.group_label(grouped[0]) == "#1, #2 g2rpo · 2 seeds"
    env = envelopes.envelope(grouped[0], "preference")
    assert env["x"] == [0, 1, 2] and env["n"] == [2, 2, 1]
    assert env["mean"] == pytest.approx([0.2, 0.3, 0.3]) and env["low"] == pytest.approx([0.1, 0.2, 0.3])
    assert env["high"] == pytest.approx([0.3, 0.4, 0.3])
    std = envelopes.envelope(grouped[0], "preference", band="± std")
    assert std["high"][0] - std["mean"][0] == pytest.approx(2 ** 0.5 * 0.1)  # the sample std of 0.1 and 0.3
    fig = envelopes.figure([a, b, c], "iteration", "preference", "min–max")
    names = [t.name for t in fig.data]
    assert names == ["#1, #2 g2rpo · 2 seeds (min–max)", "#1, #2 g2rpo · 2 seeds (mean)", "#3 dancegrpo"]
    shape = next(t for t in envelopes.figure([a, b], "iteration", "shape").data if t.name.endswith("(eval)"))
    assert list(shape.y) == pytest.approx([0.3]) and list(shape.error_y.array) == pytest.approx([0.1])
    with pytest.raises(ValueError, match="band"):
        envelopes.envelope(grouped[0], "preference", band="iqr")


def test_draw_offers_the_envelope_and_refuses_an_unknown_band(store):
    import gradio as gr

    from jobs.sink import RunSink
    from jobs.testing import fake_config, fake_record
    from jobs import runs

    ids = []
    for seed in (0, 1, 2):
        config = fake_config(iterations=4)
        config["train"]["seed"] = seed
        run_id = runs.create(config, name=f"g2rpo seed {seed}")
        sink = RunSink(run_id)
        sink.begin(0)
        for it in range(4):
            sink.write(fake_record(it, k=2, lambdas=2, group=3))
        ids.append(run_id)
    plot, table, _ = overlay_tab.draw(ids, "reward0", "iteration", True, "± std")
    assert [t.name for t in plot.data][:2] == [f"#{ids[0]}, #{ids[1]}, #{ids[2]} g2rpo · 3 seeds (± std)",
                                              f"#{ids[0]}, #{ids[1]}, #{ids[2]} g2rpo · 3 seeds (mean)"]
    assert "| seeds of one config |" in table and "| 3 |" in table
    separate, table, _ = overlay_tab.draw(ids, "reward0", "iteration", False)
    assert len(separate.data) == 3 and "seeds of one config" not in table  # unticked: one line per run
    with pytest.raises(gr.Error, match="band"):
        overlay_tab.draw(ids, "reward0", "iteration", True, "iqr")
