"""The researcher's daily loop in the UI's handlers, on stored runs (no worker, no browser): the URL
names a run and a tab and the page opens them, the Monitor opens the running run, the Runs table has
tags, best held-out score and duration, resume says what it does for a run with no checkpoint, train
longer and clone go on from a run, its whole config reads as YAML, the form saves presets of one's
own, the API's /submit names its parameters and leaves out nothing of the named preset."""
from datetime import timedelta
from types import SimpleNamespace

import gradio as gr
import pytest
import yaml

from app import forms, launch_tab, links, run_followup, runs_tab, runs_table, saved_presets
from jobs import api, runs
from jobs.models import utcnow
from jobs.sink import RunSink
from jobs.testing import fake_config, fake_record
from tests.test_app_runs import stored_run


def request(**params):
    return SimpleNamespace(query_params=params)


def test_the_url_names_the_run_and_tab_a_page_opens(store):
    done = stored_run(3, status="completed")
    assert links.opened(request(run=str(done))) == (done, done, "monitor")  # a run alone opens in the Monitor
    assert links.opened(request(run=str(done), tab="runs")) == (done, done, "runs")
    assert links.opened(request()) == (None, None, None)
    assert links.opened(request(run="999", tab="nonsense")) == (None, None, None)  # unknown: ignored
    assert links.opened(request(run="<script>")) == (None, None, None)
    running = stored_run(2, status="running")
    assert links.opened(request(tab="monitor")) == (None, running, "monitor")  # no run named: the running one
    assert links.opened(request(run=str(done))) == (done, done, "monitor")  # a named run wins
    js = links.set_param_js("tab", "monitor")
    assert "replaceState" in js and "'monitor'" in js and "g2rpoOpened" in js


def evaluated_run(scores: list[dict], status="completed", tags=()) -> int:
    run_id = runs.create(fake_config(iterations=len(scores)))
    sink = RunSink(run_id)
    sink.begin(0)
    for it, score in enumerate(scores):
        record = fake_record(it, k=2, lambdas=2, group=3)
        if it == 0:
            record["base_evaluation"] = {"trained": 0, "prompts": "eval", "seeds": 0, "scores": {"shape": 0.9}}
        record["evaluation"] = {"trained": it + 1, "prompts": "eval", "seeds": 0, "scores": score}
        sink.write(record)
    runs._transition(run_id, ("queued",), status=status, started_at=utcnow() - timedelta(minutes=5),
                     active_seconds=150.0)
    api.annotate(run_id, tags=list(tags))
    return run_id


def test_the_runs_table_has_tags_best_held_out_and_duration(store):
    run_id = evaluated_run([{"shape": 0.5, "reward0": 0.1}, {"shape": 0.7, "reward0": 0.9}, {"shape": 0.6}],
                           tags=["baseline", "lr sweep"])
    row = dict(zip(runs_table.COLUMNS, runs_table.table()[0]))
    assert row["id"] == run_id and row["tags"] == "baseline, lr sweep"
    assert row["best held-out"] == 0.7  # shape is held out (the run trains on reward0); the base's 0.9 is not the run's
    assert row["duration (min)"] == 2.5 and row["status"] == "completed"
    assert len(runs_table.DATATYPES) == len(runs_table.COLUMNS)
    assert runs_table.best_held_out([{"adherence": 0.3}, {"adherence": 0.5}], ["adherence"]) == 0.5  # none held out
    assert runs_table.best_held_out([{"a": 0.3, "b": 0.1}, {"a": 0.5, "b": 0.5}], ["a"]) == 0.5
    assert runs_table.best_held_out([], ["shape"]) is None
    assert runs_tab.runs_api()[0]["best held-out"] == 0.7


def test_resume_of_a_run_that_trained_nothing_says_it_starts_from_the_beginning(store):
    run_id = stored_run(0, status="cancelled")
    assert runs_tab.redo_note(run_id) == "it starts from the beginning: no iteration was trained yet"
    assert "(its last checkpoint)" not in runs_tab.selection(run_id)[0]


def completed_small_run(iterations: int) -> int:
    """A run of the small config that trained `iterations` (stored as if it had: fake records, its
    last checkpoint's folder with checksums), completed."""
    from engine.training.checksums import write_checksums
    from jobs import settings
    from jobs.testing import SMALL

    run_id = api.submit("configs/g2rpo.yaml", SMALL + [f"train.iterations={iterations}"])
    sink = RunSink(run_id)
    sink.begin(0)
    for it in range(iterations):
        sink.write(fake_record(it, k=2, lambdas=2, group=3, checkpoint=it + 1 == iterations))
    folder = settings.run_dir(run_id) / f"checkpoints/iter_{iterations:06d}"
    folder.mkdir(parents=True)
    (folder / "trainable.safetensors").write_bytes(b"weights")
    write_checksums(folder)
    runs._transition(run_id, ("queued",), status="completed", heartbeat_at=utcnow())
    return run_id


def test_train_longer_queues_the_run_for_more_iterations_and_says_where_it_continues(store):
    run_id = completed_small_run(4)
    assert "Resume:" not in runs_tab.selection(run_id)[0]  # completed: it trains longer instead
    with pytest.raises(gr.Error, match="whole number of iterations >= 1"):
        run_followup.train_longer(None, True, run_id, 2.5)
    message = run_followup.train_longer(None, True, run_id, 6)
    assert message.startswith(f"Run #{run_id} queued to train longer: iterations 5–10 of 10, its 4 done kept")
    run = api.get_run(run_id)
    assert (run["status"], run["iterations"]) == ("queued", 10)
    with pytest.raises(gr.Error, match="is queued; only"):
        run_followup.train_longer(None, True, run_id, 6)


def test_clone_fills_the_launch_form_with_the_runs_config_and_its_yaml_shows_all_of_it(store):
    from jobs.testing import SMALL

    run_id = api.submit("configs/g2rpo.yaml", SMALL + ["train.iterations=3", "train.learning_rate=0.002"])
    preset, *values = run_followup.clone(run_id)
    assert preset["value"] == f"run #{run_id}" and f"run #{run_id}" in preset["choices"]
    values = dict(zip(forms.KEYS, values))
    assert values["iterations"] == 3 and values["learning_rate"] == 0.002 and values["model"] == "tiny-flux"
    config, errors = forms.check(preset["value"], values)
    assert errors == {} and config == api.get_run(run_id)["config"]
    assert yaml.safe_load(run_followup.config_yaml(run_id)) == api.get_run(run_id)["config"]
    assert run_followup.config_yaml(None) == ""
    with pytest.raises(gr.Error, match="no run 999"):
        run_followup.clone(999)


def test_the_form_is_saved_as_a_preset_and_offered_in_the_list(store):
    preset = "DiffusionNFT · built-in model"
    values = [forms.preset_values(preset)[k] for k in forms.KEYS]
    save = saved_presets.in_message(saved_presets.save)
    listed, message = save(None, True, preset, "nft short", *values)
    assert message == "Saved the form as preset **★ nft short**." and listed["value"] == "★ nft short"
    assert "★ nft short" in listed["choices"] and forms.preset_labels()[-1] == "★ nft short"
    bad = dict(zip(forms.KEYS, values)) | {"learning_rate": -1}
    kept, problem = save(None, True, preset, "broken", *[bad[k] for k in forms.KEYS])
    assert kept == gr.skip() and problem.startswith("⚠️ Not saved: the form has 1 problem (learning_rate)")
    assert saved_presets.in_message(saved_presets.delete)(None, True, preset)[1].startswith("⚠️ Pick a saved preset")
    assert saved_presets.in_message(saved_presets.delete)(None, True, "★ nft short")[1] == "Deleted preset ★ nft short."
    assert api.list_presets() == []


def test_no_cost_is_shown_for_a_form_with_errors(store):
    preset = "G²RPO · built-in model"
    values = forms.preset_values(preset)
    assert "model evaluations per iteration" in launch_tab.cost_line(preset, *[values[k] for k in forms.KEYS])
    wrong = {**values, "prompts": "a red zebra"}  # the form reads it; the config's check refuses it
    line = launch_tab.cost_line(preset, *[wrong[k] for k in forms.KEYS])
    assert line.startswith(launch_tab.FORM_HAS_ERRORS) and "Training prompts (one per line): unknown word(s) 'zebra'" in line
    assert "model evaluations per iteration" not in line
    huge = {**values, "iterations": 90_000}  # refused by the estimate: its reason, with the estimate, instead
    assert "longer than" in launch_tab.cost_line(preset, *[huge[k] for k in forms.KEYS])


def test_the_intervals_follow_the_iterations_until_the_user_sets_them():
    preset = "G²RPO · built-in model"
    assert launch_tab.fit_intervals(preset, 20, []) == [4, 5]
    assert launch_tab.fit_intervals(preset, 20, ["sample_every"]) == [4, gr.skip()]
    assert launch_tab.fit_intervals(preset, "2x", []) == [20, 25]  # not a number yet: the preset's


def test_a_short_runs_plots_tick_whole_iterations_and_keep_the_legend_off_the_titles(store):
    from app import curves, figures, monitor

    view, _ = monitor.poll(None, stored_run(4))
    fig = curves.reward_curves(view["metrics"], [], set(), "iteration")
    assert fig.layout.xaxis.dtick == 1 and fig.layout.legend.x > 1  # right of the panels, not over their titles
    assert figures.diagnostics(view["metrics"]).layout.xaxis.dtick == 1
    long_view, _ = monitor.poll(None, stored_run(30))
    assert curves.reward_curves(long_view["metrics"], [], set(), "iteration").layout.xaxis.dtick is None  # plotly's
    assert curves.reward_curves(view["metrics"], [], set(), "model_evaluations").layout.xaxis.dtick is None


def test_a_long_runs_sample_grid_still_shows_the_base_samples(store):
    from PIL import Image

    from app import monitor, samples_grid
    from jobs import settings

    run_id = runs.create({**fake_config(iterations=40), "sample_prompts": ["a", "b"]})
    sink = RunSink(run_id)
    sink.begin(0)
    for it in range(40):  # samples every 2 iterations: 42 images, more than the gallery's newest 24
        record = fake_record(it, k=2, lambdas=2, group=3)
        for key, trained in (("base_samples", 0), ("samples", it + 1)):
            if (key == "base_samples") == (it == 0) and trained % 2 == 0:
                record[key] = [f"samples/iter_{trained:06d}/{i:02d}.png" for i in range(2)]
                for path in record[key]:
                    (settings.run_dir(run_id) / path).parent.mkdir(parents=True, exist_ok=True)
                    Image.new("RGB", (8, 8)).save(settings.run_dir(run_id) / path)
        sink.write(record)
    view, _ = monitor.poll(None, run_id)
    assert {s["trained"] for s in view["samples"]} >= {0, 40}
    html = samples_grid.grid(view)
    assert "after 40 iterations" in html and html.count("<img") == 4  # base and newest, for both prompts
