"""The launch form: presets round-trip to the CLI's config, and each problem lands at its field."""
import pytest

from app import forms
from engine.config import load_config


BUILT_IN = [label for label in forms.PRESETS if "built-in" in label]


@pytest.mark.parametrize("preset", BUILT_IN)
def test_an_untouched_preset_submits_exactly_its_config_file(preset):
    config, errors = forms.check(preset, forms.preset_values(preset))
    assert errors == {}
    assert config == load_config(forms.CONFIGS / forms.PRESETS[preset]).to_dict()


def test_the_flux_preset_fills_the_form_and_names_what_to_download(monkeypatch):
    """Its weights are not here: the form still fills, and submitting says what is missing, where."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    preset = next(label for label in forms.PRESETS if "FLUX" in label)
    values = forms.preset_values(preset)
    assert values["model"] == "flux" and values["resolution"] == "720" and values["rewards"] == "hps=1, clip_score=1"
    config, errors = forms.check(preset, values)
    assert config is None
    assert "hf download black-forest-labs/FLUX.1-dev" in errors["model_path"]
    assert "hps" in errors["rewards"] and "clip_score" in errors["rewards"]
    assert "prompts/hpdv2_train.txt" in errors[""]



@pytest.mark.parametrize("preset", [label for label in forms.PRESETS if "FLUX" in label])
def test_every_flux_preset_lacks_only_what_is_not_downloaded(monkeypatch, preset):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config, errors = forms.check(preset, forms.preset_values(preset))
    assert config is None and set(errors) <= {"model_path", "rewards", ""}, errors
    assert "hf download black-forest-labs/FLUX.1-dev" in errors["model_path"]


def test_edited_fields_reach_the_config():
    preset = "G²RPO · built-in model"
    values = {**forms.preset_values(preset), "branch_steps": "0 2, 4", "granularities": "1,3", "learning_rate": 1e-3,
              "rewards": "preference=1, adherence=0.5", "prompts": "a red circle on a black background\n\n"}
    config, errors = forms.check(preset, values)
    assert errors == {}
    assert config["algorithm"]["branch_steps"] == [0, 2, 4] and config["algorithm"]["granularities"] == [1, 3]
    assert config["train"]["learning_rate"] == 1e-3
    assert config["rewards"] == [{"name": "preference", "weight": 1.0, "model": None},
                                 {"name": "adherence", "weight": 0.5, "model": None}]
    assert config["prompts"] == ["a red circle on a black background"]


@pytest.mark.parametrize("key, value, message", [
    ("granularities", "", "Lambda must not be empty"),
    ("branch_steps", "0, 1, x", "whole numbers"),
    ("branch_steps", "0, 40", "beyond the grid"),
    ("learning_rate", -1, "must be > 0"),
    ("learning_rate", None, "a number is needed"),
    ("group_size", 2.5, "a whole number"),
    ("rewards", "preference=heavy", "name=weight"),
    ("rewards", "hpsv3=1", "unknown reward 'hpsv3'"),
    ("prompts", "a red zebra", "unknown word(s) 'zebra'"),
    ("prompts", "x" * 10_000, "10,000 characters"),
    ("sample_prompts", "  \n ", "at least one prompt"),
])
def test_each_problem_is_reported_at_its_field(key, value, message):
    preset = "G²RPO · built-in model"
    config, errors = forms.check(preset, {**forms.preset_values(preset), key: value})
    assert config is None and list(errors) == [key] and message in errors[key]


@pytest.mark.parametrize("algorithm, greyed", [
    ("g2rpo", {"merge_steps"}), ("egrpo", set()),
    ("dancegrpo", {"branch_steps", "granularities", "merge_steps"}),
    ("flowgrpo", {"branch_steps", "granularities", "merge_steps"}),
    ("mixgrpo", {"branch_steps", "granularities", "merge_steps"}),
    ("diffusionnft", {"branch_steps", "granularities", "merge_steps", "eta", "clip_range"})])
def test_fields_an_algorithm_does_not_read_are_greyed_out(algorithm, greyed):
    from app import launch_tab

    assert {key for key in forms.KEYS if not forms.applies(key, algorithm)} == greyed
    states = dict(zip(forms.ONLY_FOR, launch_tab.field_states(algorithm)))
    assert {key for key, update in states.items() if update["interactive"] is False} == greyed
    assert all(forms.applies(key, "nonsense") for key in forms.KEYS)  # the config's check names it


def test_the_cost_is_shown_before_launch_and_warns_when_long(store):
    from app import cost

    preset = "G²RPO · built-in model"
    values = forms.preset_values(preset)
    line = cost.preview(preset, values)
    assert "model evaluations per iteration" in line and "per iteration" in line and "GB" in line
    longer = cost.preview(preset, {**values, "iterations": 100_000})
    assert "⚠️ About" in longer and "⚠️" not in line.split("\n\n")[0]
    assert "shown once" in cost.preview(preset, {**values, "group_size": "x"})


def test_default_names_tell_runs_apart():
    config, _ = forms.form_to_config("G²RPO · built-in model", {**forms.preset_values("G²RPO · built-in model"),
                                                               "branch_steps": "0, 1, 2", "learning_rate": 3e-4})
    assert forms.default_name(config) == f"g2rpo G{config['algorithm']['group_size']} K3 Λ3 lr 0.0003 seed 0"
    baseline, _ = forms.form_to_config("DanceGRPO · built-in model", forms.preset_values("DanceGRPO · built-in model"))
    assert forms.default_name(baseline).startswith("dancegrpo G") and "K" not in forms.default_name(baseline)


def test_the_egrpo_preset_launches_with_its_merged_steps():
    preset = "E-GRPO · built-in model"
    config, errors = forms.check(preset, forms.preset_values(preset))
    assert errors == {} and config["algorithm"]["merge_steps"] == [1, 1, 2, 3]
    assert forms.default_name(config).startswith("egrpo G8 K4 Λ1")
    _, errors = forms.check(preset, {**forms.preset_values(preset), "merge_steps": "1, 2"})
    assert "one span per branch step" in errors["merge_steps"]


def test_every_problem_of_the_form_comes_in_one_round():
    """A value the form cannot read, one out of bounds, one the settings' cross-checks refuse and an
    unknown word: each stage of the config's check used to stop at its first failing stage."""
    preset = "G²RPO · built-in model"
    values = {**forms.preset_values(preset), "group_size": "x", "learning_rate": -1, "branch_steps": "0, 40",
              "prompts": "a red zebra"}
    config, errors = forms.check(preset, values)
    assert config is None and set(errors) == {"group_size", "learning_rate", "branch_steps", "prompts"}
    assert "a number is needed" in errors["group_size"] and "must be > 0" in errors["learning_rate"]
    assert "beyond the grid" in errors["branch_steps"] and "zebra" in errors["prompts"]
    _, errors = forms.check(preset, {**values, "iterations": 10**7})  # and the estimate's verdict with them
    assert "longer than" in errors.get("", "") or "iterations" in errors, errors


@pytest.mark.parametrize("iterations, checkpoint, samples", [(100, 20, 25), (400, 20, 25), (20, 4, 5), (4, 1, 1),
                                                             (2, 1, 1), (1, 20, 25)])
def test_checkpoint_and_sample_intervals_fit_the_iterations(iterations, checkpoint, samples):
    preset = "G²RPO · built-in model"
    assert forms.preset_values(preset)["iterations"] == 100  # the preset: checkpoint every 20, samples every 25
    fitted = forms.fitted_intervals(preset, iterations)
    assert fitted == {"checkpoint_every": checkpoint, "sample_every": samples}
    if iterations > 1:  # at least one mid-run checkpoint and sample set
        assert fitted["checkpoint_every"] < iterations and fitted["sample_every"] < iterations


def test_values_left_out_keep_the_named_preset():
    preset = "DiffusionNFT · built-in model"
    values = forms.complete(preset, {"iterations": 20, "learning_rate": None})
    assert values["algorithm"] == "diffusionnft" and values["learning_rate"] == forms.preset_values(preset)["learning_rate"]
    assert values["checkpoint_every"] < 20 and values["sample_every"] < 20  # fitted: not given
    assert forms.complete(preset, {"iterations": 20, "sample_every": 7})["sample_every"] == 7  # given: kept


def test_a_saved_preset_and_a_runs_config_start_the_form(store):
    from jobs import api, runs
    from jobs.testing import SMALL

    run_id = api.submit("configs/g2rpo.yaml", SMALL + ["train.iterations=3"], name="small")
    label = forms.run_label(run_id)
    values = forms.preset_values(label)
    assert values["iterations"] == 3 and values["model"] == "tiny-flux" and values["rewards"] == "brightness=1"
    config, errors = forms.check(label, values)
    stored = api.get_run(run_id)["config"]
    assert errors == {} and config == stored  # the clone submits the run's own config, settings beyond the form too
    api.save_preset("mine", config)
    assert forms.SAVED + "mine" in forms.preset_labels() and forms.preset_values(forms.SAVED + "mine") == values
    runs._transition(run_id, ("queued",), status="cancelled")
    api.delete(run_id)
    assert not forms.known(label) and forms.known(forms.SAVED + "mine") and not forms.known(forms.SAVED + "other")
    with pytest.raises(forms.ConfigError, match="unknown preset"):
        forms.preset_config("nonsense")
