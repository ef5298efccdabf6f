"""The Runs, Monitor and Compare handlers on stored runs (no worker, no sampler): resume says what it
redoes, buttons follow the run's state, delete asks first, messages replace each other, the Monitor's
run label follows its status, Compare says what is wrong, and a run that over-optimises is called out
with its best held-out checkpoint offered."""
import gradio as gr
import pytest

from app import compare_tab, errors, monitor, monitor_tab, runs_tab
from engine.training.checksums import write_checksums
from jobs import api, runs, settings
from jobs.models import utcnow
from jobs.sink import RunSink
from jobs.testing import fake_config, fake_record


def stored_run(iterations_done: int, checkpoint_at=(), status="cancelled", planned=300) -> int:
    run_id = runs.create(fake_config(iterations=planned))
    sink = RunSink(run_id)
    sink.begin(0)
    for it in range(iterations_done):
        sink.write(fake_record(it, k=2, lambdas=2, group=3, checkpoint=it + 1 in checkpoint_at))
        if it + 1 in checkpoint_at:  # the folder a resume reads, with its checksums
            folder = settings.run_dir(run_id) / f"checkpoints/iter_{it + 1:06d}"
            folder.mkdir(parents=True)
            (folder / "trainable.safetensors").write_bytes(b"weights")
            write_checksums(folder)
    runs._transition(run_id, ("queued",), status=status, heartbeat_at=utcnow())  # beating: not interrupted
    return run_id


def interactive(updates):
    return [u["interactive"] for u in updates]


def test_resume_says_how_many_iterations_will_be_redone(store):
    run_id = stored_run(7)  # cancelled at 7/300 before its first checkpoint
    assert api.resume_point(run_id) == {"done": 7, "start": 0, "redo": 7}
    about, *_ = runs_tab.selection(run_id)
    assert "7 of the 7 iterations done (1–7) will be redone" in about
    message = runs_tab.resume(None, True, run_id)
    assert message.startswith(f"Run #{run_id} queued again; it restarts from iteration 0") and "7 of the 7" in message
    later = stored_run(12, checkpoint_at=(5, 10))
    assert "its checkpoint after 10 iterations, so 2 of the 12 iterations done (11–12)" in runs_tab.redo_note(later)
    (settings.run_dir(later) / "checkpoints/iter_000010/trainable.safetensors").write_bytes(b"weightz")
    assert "its checkpoint after 5 iterations, so 7 of the 12" in runs_tab.redo_note(later)  # corrupt: skipped
    finished = stored_run(12, checkpoint_at=(12,))
    assert "nothing is redone" in runs_tab.redo_note(finished)


def test_buttons_follow_the_run_state(store):
    finished = stored_run(3, checkpoint_at=(2,), status="completed")
    _, *buttons = runs_tab.selection(finished)
    # cancel, resume, delete, download, train longer, clone: a completed run goes on by training longer
    assert interactive(buttons) == [False, False, True, True, True, True]
    assert interactive(runs_tab.selection(stored_run(3, status="cancelled"))[1:]) == [False, True, True, False, True, True]
    queued = runs.create(fake_config())
    assert interactive(runs_tab.selection(queued)[1:]) == [True, False, False, False, False, True]
    assert interactive(runs_tab.selection(None)[1:]) == [False] * 6


def test_delete_asks_first(store):
    run_id = stored_run(2)
    row, text = runs_tab.ask_delete(run_id)
    assert row["visible"] is True and f"Delete run #{run_id}" in text and "cannot be undone" in text
    assert api.get_run(run_id)  # nothing deleted yet
    assert runs_tab.delete(None, True, run_id) == f"Run #{run_id} deleted."


def test_a_problem_replaces_the_message_line_instead_of_a_toast_beside_it(store):
    run_id = stored_run(2)
    cancel = errors.in_message_line(runs_tab.cancel, 0)
    assert cancel(None, True, run_id).startswith("⚠️ ") and "nothing to cancel" in cancel(None, True, run_id)
    assert errors.in_message_line(runs_tab.delete, 0)(None, True, run_id) == f"Run #{run_id} deleted."


def test_the_monitor_relabels_the_run_when_its_status_changes(store):
    run_id = stored_run(2, status="running")
    view, *_ = outputs = monitor_tab.redraw(None, run_id, "iteration", 0.6, "mean |advantage|", -1, 20, -1, None)
    label = dict((v, k) for k, v in outputs[-1]["choices"])[run_id]
    assert label.endswith("· running")
    runs._transition(run_id, ("running",), status="completed")
    outputs = monitor_tab.tick(view, run_id, "iteration", 0.6, "mean |advantage|", -1, 20, -1, None)
    assert dict((v, k) for k, v in outputs[-1]["choices"])[run_id].endswith("· completed")
    assert all(o is gr.skip() or isinstance(o, dict) and o.get("__type__") == "update"
               for o in monitor_tab.tick(outputs[0], run_id, "iteration", 0.6, "mean |advantage|", -1, 20, -1, None)[1:])


def test_compare_with_an_unknown_word_says_so_in_its_message_line(store):
    run_id = stored_run(2, checkpoint_at=(2,))
    outputs = errors.in_message_line(compare_tab.compare, 4)(run_id, None, "a red zebra on a black background", 0)
    assert outputs[:4] == [gr.skip()] * 4
    assert outputs[4].startswith("⚠️ ") and "zebra" in outputs[4]


def hacking_run(hacks: bool) -> int:
    """30 iterations, evaluated every 5 (base first) and checkpointed every 5; with `hacks`, the
    training reward rises throughout while the held-out `shape` peaks at 10 iterations, then falls."""
    run_id = runs.create(fake_config(iterations=30))
    sink = RunSink(run_id)
    sink.begin(0)
    for it in range(30):
        record = fake_record(it, k=2, lambdas=2, group=3, checkpoint=(it + 1) % 5 == 0)
        record["reward"] = {"reward0": {"mean": 0.2 + 0.02 * it if hacks else 0.5, "std": 0.1}}
        if it == 0:
            record["base_evaluation"] = {"trained": 0, "prompts": "eval", "seeds": 0, "scores": {"shape": 0.5}}
        if (it + 1) % 5 == 0:
            t = it + 1
            shape = (0.5 + 0.05 * t if t <= 10 else 1.0 - 0.03 * t) if hacks else 0.5 + 0.01 * t
            record["evaluation"] = {"trained": t, "prompts": "eval", "seeds": 0, "scores": {"shape": shape}}
        sink.write(record)
    runs._transition(run_id, ("queued",), status="completed")
    return run_id


@pytest.mark.parametrize("hacks", [True, False])
def test_stored_over_optimisation_is_called_out_with_the_best_checkpoint_offered(store, hacks):
    run_id = hacking_run(hacks)
    view, _ = monitor.poll(None, run_id)
    notes, about = monitor_tab.notes(view), runs_tab.selection(run_id)[0]
    choices = dict(compare_tab.checkpoint_choices(run_id)["choices"])
    if hacks:
        assert "Over-optimisation" in notes and "checkpoints/iter_000010" in notes
        assert "Best held-out: `checkpoints/iter_000010`" in about
        assert "checkpoints/iter_000010 · best held-out" in choices
    else:
        assert "Over-optimisation" not in notes and "Best held-out" not in about
        assert not any("best held-out" in label for label in choices)  # the latest is the best: no second offer
    assert "checkpoints/iter_000030 · latest" in choices


def test_the_cost_before_launch_uses_the_rate_recent_runs_measured(store):
    from app import cost, forms
    from jobs import forecast

    preset = "G²RPO · built-in model"
    assert "measured on this machine" not in cost.preview(preset, forms.preset_values(preset))
    run_id = stored_run(4)  # fake records: about 0.5 s for 1,822 model evaluations
    assert api.get_run(run_id)["model"] == "builtin" and api.get_run(run_id)["algorithm"] == "g2rpo"
    rate = api.queries.measured_rate("builtin", "g2rpo")
    assert rate["runs"] == [run_id] and rate["seconds_per_evaluation"] == pytest.approx(0.5 / 1822, rel=0.05)
    line = cost.preview(preset, forms.preset_values(preset))
    idle = forecast.measured_rate("builtin", "g2rpo")["seconds_per_evaluation"]  # the fastest iterations'
    assert idle == pytest.approx(0.5 / 1822, rel=0.1)
    assert f"{1000 * idle:.2g} ms per model evaluation, measured on this machine in run #{run_id}" in line


def test_the_config_diff_of_two_runs_names_the_settings_that_differ(store):
    a = runs.create(fake_config(iterations=100))
    b = runs.create(fake_config(iterations=200))
    diff = compare_tab.config_diff(a, b)
    assert "| `train.iterations` | 100 | 200 |" in diff and "algorithm.name" not in diff
    assert "the same config" in compare_tab.config_diff(a, a)
    assert compare_tab.config_diff(a, None) == ""


def test_the_http_api_keeps_its_endpoint_names(store):
    """The page's own buttons are private events named *_page; the API's names stay as documented."""
    from app.ui import build_demo

    names = {fn.api_name for fn in build_demo().fns.values() if fn.api_visibility != "private"}
    assert {"submit", "runs", "cancel", "resume", "delete", "download", "push", "compare", "seed_grid", "compare_runs",
            "overlay", "samples", "train_longer"} <= names
