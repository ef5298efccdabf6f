"""Compare's model references (app/model_choice.py): the base, a run's checkpoint, a LoRA folder (the
README's committed ones included), a Hub id; each bad one refused with a one-line message, on
stored runs and without network. And a failed Compare request clears the result it replaces."""
import gradio as gr
import pytest

from app import compare_tab, errors, model_choice
from jobs import runs, settings
from jobs.sink import RunSink
from jobs.testing import fake_config, fake_record

README_LORA = "docs/readme-run/lora"


def checkpointed_run(model: str = "builtin") -> int:
    config = fake_config(iterations=4)
    config["model"]["name"] = model
    run_id = runs.create(config)
    sink = RunSink(run_id)
    sink.begin(0)
    for it in range(2):
        sink.write(fake_record(it, k=2, lambdas=2, group=3, checkpoint=True))
    return run_id


def test_the_readmes_committed_loras_are_offered_and_load_with_their_config(store):
    assert {model_choice.shown_path(p) for p in model_choice.committed_loras()} == {README_LORA, "docs/g2rpo-run/lora"}
    side = model_choice.resolve(README_LORA)
    assert side.adapter.endswith("docs/readme-run/lora") and side.label == f"LoRA {README_LORA}"
    assert side.settings["model"]["name"] == "builtin" and side.settings["sampling"] == {"steps": 16, "shift": 3.0}
    assert {"adherence", "preference", "shape"} <= set(side.settings["rewards"])  # its config's rewards
    assert (README_LORA in dict((v, k) for k, v in model_choice.choices()))


def test_a_run_reference_names_its_checkpoint(store):
    run_id = checkpointed_run()
    for text in (f"run:{run_id}", f"run {run_id}", f"#{run_id}"):
        side = model_choice.resolve(text)
        assert side.reference == f"run:{run_id}:checkpoints/iter_000002" and side.run_id == run_id
        assert side.label == f"run #{run_id} · iter_000002 (latest)"
        assert side.adapter == str(settings.run_dir(run_id) / "checkpoints/iter_000002")
    assert model_choice.resolve(f"run:{run_id}:checkpoints/iter_000001").label == f"run #{run_id} · iter_000001"
    assert (f"run:{run_id}" in dict((v, k) for k, v in model_choice.choices()))


@pytest.mark.parametrize("reference, message", [
    ("", "Choose a model"),
    ("run:999", "no run 999"),
    ("run:{run}:checkpoints/iter_000009", "has no checkpoint 'checkpoints/iter_000009'; it has checkpoints/iter_000001"),
    ("run:{run}:../../../etc", "has no checkpoint"),
    ("/etc", "outside the folders Compare reads LoRAs from"),
    ("docs/readme-run", "outside the folders Compare reads LoRAs from"),  # the run's folder, not its lora/
    ("{models}", "no pytorch_lora_weights.safetensors"),
    ("x" * 501, "at most 500 characters"),
])
def test_a_bad_reference_is_refused_in_one_line(store, reference, message):
    run_id = checkpointed_run()
    (settings.data_dir() / "models").mkdir(exist_ok=True)
    text = reference.format(run=run_id, models=settings.data_dir() / "models")
    with pytest.raises(model_choice.ChoiceError, match=message) as err:
        model_choice.resolve(text)
    assert "\n" not in str(err.value)


def test_a_run_without_a_checkpoint_says_so(store):
    run_id = runs.create(fake_config(iterations=4))
    with pytest.raises(model_choice.ChoiceError, match="has no checkpoint yet"):
        model_choice.resolve(f"run:{run_id}")


def test_a_lora_folder_in_the_data_folders_models_reads_its_config(store):
    folder = settings.data_dir() / "models" / "mine" / "lora"
    folder.mkdir(parents=True)
    (folder / model_choice.LORA_WEIGHTS).write_bytes(b"weights")
    assert model_choice.resolve(str(folder)).settings == model_choice.builtin_settings()  # no config: built-in
    (folder.parent / "config.yaml").write_text("model: {name: tiny-flux}\nsampling: {steps: 8}\n"
                                              "rewards: [{name: brightness}]\n")
    side = model_choice.resolve(str(folder))
    assert side.settings["model"]["name"] == "tiny-flux" and side.settings["sampling"]["steps"] == 8
    assert side.settings["rewards"] == ["brightness"]
    (folder.parent / "config.yaml").write_text("model: {name: nonsense}\n")
    with pytest.raises(model_choice.ChoiceError, match="its config.yaml: .*nonsense"):
        model_choice.resolve(str(folder))
    (folder.parent / "config.yaml").write_text("model: {name: flux, path: /etc}\n")
    with pytest.raises(model_choice.ChoiceError, match="outside the folders"):  # a local model path, read nowhere else
        model_choice.resolve(str(folder))


def test_a_hub_lora_without_the_hub_is_refused_with_what_to_do(store, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(model_choice.ChoiceError, match="'someone/g2rpo-lora' is not in the local Hugging Face cache "
                                                       "and HF_HUB_OFFLINE is set; download it first"):
        model_choice.resolve("someone/g2rpo-lora")


@pytest.mark.parametrize("card, model", [
    ({"tags": ["lora", "flux", "g2rpo-studio"], "base_model": "black-forest-labs/FLUX.1-dev"},
     {"name": "flux", "path": "black-forest-labs/FLUX.1-dev"}),
    ({"base_model": ["stabilityai/stable-diffusion-3.5-medium"]}, {"name": "sd3", "path": "stabilityai/stable-diffusion-3.5-medium"}),
    ({"tags": ["g2rpo-studio", "lora"]}, {"name": "builtin"}),  # a LoRA of the built-in model, pushed by the studio
    ({"tags": ["lora"], "base_model": "runwayml/stable-diffusion-v1-5"}, None),
    ({}, None),
])
def test_a_hub_loras_base_model_comes_from_its_card(card, model):
    assert model_choice.model_from_card(card) == model


def test_two_sides_share_one_model(store):
    base, lora = model_choice.resolve("base"), model_choice.resolve(README_LORA)
    assert model_choice.shared_settings(base, lora) == lora.settings  # the base takes the LoRA's model
    with pytest.raises(model_choice.ChoiceError, match="Both sides are the base model"):
        model_choice.shared_settings(base, base)
    tiny = model_choice.resolve(f"run:{checkpointed_run('tiny-flux')}")
    with pytest.raises(model_choice.ChoiceError, match="LoRA of builtin and run #.* of tiny-flux: compare LoRAs of one model"):
        model_choice.shared_settings(lora, tiny)


def test_a_failed_comparison_clears_the_images_it_replaces(store):
    outputs = errors.in_message_line(compare_tab._page(compare_tab.compare_page), 3, clear=True)(
        compare_tab.LORA_SOURCE, None, None, README_LORA, "a red zebra on a black background", 0)
    assert [o["value"] for o in outputs[:3]] == [None, None, None]  # slider, images, scores: emptied
    assert outputs[3].startswith("⚠️ ") and "zebra" in outputs[3]
    outputs = errors.in_message_line(compare_tab._page(compare_tab.compare_page), 3, clear=True)(
        compare_tab.LORA_SOURCE, None, None, "/etc", "a red circle on a black background", 0)
    assert "outside the folders Compare reads LoRAs from" in outputs[3]
    with pytest.raises(gr.Error, match="Choose a run"):  # the run source with no run chosen (the LoRA ignored)
        compare_tab._page(compare_tab.compare_page)(compare_tab.RUN_SOURCE, None, None, README_LORA, "a red circle", 0)


def test_the_http_api_compares_a_lora_folder_and_refuses_one_outside(app_server):
    import numpy as np
    from gradio_client import Client
    from PIL import Image

    client = Client(app_server["url"], verbose=False)
    prompt = "two red circles on a black background"
    _, base, tuned, scores = client.predict(None, None, prompt, 0, README_LORA, api_name="/compare")
    assert not np.array_equal(np.asarray(Image.open(base)), np.asarray(Image.open(tuned)))
    assert [row[0] for row in scores["data"]][:2] == ["adherence", "preference"]  # its config's rewards
    grid_base, grid_tuned = client.predict(None, None, prompt, 0, 2, README_LORA, api_name="/seed_grid")
    assert len(grid_base) == len(grid_tuned) == 2
    with pytest.raises(Exception, match="outside the folders Compare reads LoRAs from"):
        client.predict(None, None, prompt, 0, "/etc", api_name="/compare")
    with pytest.raises(Exception, match="Choose a run"):  # no run and no LoRA
        client.predict(None, None, prompt, 0, api_name="/compare")
    client.close()
