"""The app's HTTP API through gradio_client, against the launched app and a real worker."""
import time

import pytest
from gradio_client import Client

from app import forms

PRESET = "G²RPO · built-in model"
SMALL = dict(branch_steps="0, 1, 2, 3", granularities="1, 2", group_size=4, iterations=4, steps=8, eval_every=2,
             sample_every=2, checkpoint_every=2, prompts_per_iteration=1)


def form(**changes) -> list:
    """The Launch form's values in order: the preset's, with changes."""
    values = {**forms.preset_values(PRESET), **SMALL, **changes}
    return [values[k] for k in forms.KEYS]


@pytest.fixture(scope="module")
def client(app_server):
    c = Client(app_server["url"], verbose=False)
    yield c
    c.close()


def runs(client) -> list[dict]:
    return client.predict(api_name="/runs")


def wait_status(client, run_id: int, statuses: tuple, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = next(r for r in runs(client) if r["id"] == run_id)
        if row["status"] in statuses:
            return row
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} is still {row['status']}")


def test_submit_trains_and_compare_shows_base_and_tuned(client):
    message, run_id = client.predict(PRESET, "api run", *form(learning_rate=0.01), api_name="/submit")
    run_id = int(run_id)
    assert f"#{run_id}" in message and "Queued" in message
    row = wait_status(client, run_id, ("completed", "failed"))
    assert row["status"] == "completed" and row["progress"].startswith("4/4") and row["reward"] is not None

    (slider_base, slider_tuned), base, tuned, scores = client.predict(
        run_id, None, "two red circles on a black background", 3, api_name="/compare")
    assert slider_base and slider_tuned and base and tuned
    names = [row[0] for row in scores["data"]]
    assert names == ["adherence", "preference", "background", "colour", "shape", "count"]  # training reward first
    from PIL import Image
    import numpy as np

    assert not np.array_equal(np.asarray(Image.open(base)), np.asarray(Image.open(tuned)))  # the LoRA moved it
    again = client.predict(run_id, None, "two red circles on a black background", 3, api_name="/compare")
    assert np.array_equal(np.asarray(Image.open(again[1])), np.asarray(Image.open(base)))  # same seed, same image

    import zipfile

    with zipfile.ZipFile(client.predict(run_id, api_name="/download")) as z:
        assert {"lora/pytorch_lora_weights.safetensors", "config.yaml", "metrics.csv"} <= set(z.namelist())


BAD = {  # the form's change -> what the message at that field says
    "empty prompt": (dict(sample_prompts="   "), "at least one prompt is needed"),
    "unknown word": (dict(prompts="a red zebra on a black background"), "unknown word(s) 'zebra'"),
    "empty Λ": (dict(granularities=""), "Lambda must not be empty"),
    "negative learning rate": (dict(learning_rate=-1), "must be > 0, got -1.0"),
    "10,000-character prompt": (dict(prompts="r" * 10_000), "a prompt of 10,000 characters"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_and_stores_nothing(client, case):
    before = runs(client)
    change, message = BAD[case]
    with pytest.raises(Exception, match="failed validation") as err:
        client.predict(PRESET, "bad", *form(**change), api_name="/submit")
    assert message in str(err.value)
    assert runs(client) == before


def test_cancel_a_running_run_keeps_its_metrics(client):
    _, run_id = client.predict(PRESET, "to cancel", *form(iterations=500, eval_every=0), api_name="/submit")
    run_id = int(run_id)
    wait_status(client, run_id, ("running",))
    deadline = time.monotonic() + 120
    while next(r for r in runs(client) if r["id"] == run_id)["progress"].startswith("0/"):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert "cancel" in client.predict(run_id, api_name="/cancel")
    row = wait_status(client, run_id, ("cancelled",), timeout=30)
    assert not row["progress"].startswith("0/")  # what it trained is kept
    with pytest.raises(Exception, match="nothing to cancel"):
        client.predict(run_id, api_name="/cancel")


def test_overlay_draws_several_finished_runs(client):
    """The study in small: the finished runs of this module (one completed, one cancelled) overlaid."""
    finished = [r for r in runs(client) if r["status"] in ("completed", "cancelled")]
    assert len(finished) >= 2, "runs from the tests above"
    ids = [r["id"] for r in finished[:2]]
    plot, table, reward = client.predict(ids, None, "model evaluations", api_name="/overlay")
    figure = plot["plot"] if isinstance(plot, dict) else plot
    for run_id in ids:
        assert f"#{run_id} " in figure and f"| \\#{run_id} " in table  # the label is escaped Markdown
    assert "model evaluations" in figure and "adherence" in figure  # the training reward first
    with pytest.raises(Exception, match="at least two runs"):
        client.predict(ids[:1], None, "iteration", api_name="/overlay")


def documented_example(url: str) -> str:
    """The /submit example of docs/web-ui.md (the python block under "### Launching from Python"),
    pointed at `url`."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "web-ui.md").read_text()
    section = text.split("### Launching from Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'Client("http://127.0.0.1:7860/")' in code
    return code.replace("http://127.0.0.1:7860/", url)


def test_submit_names_its_parameters_and_the_documented_example_queues_the_preset(client, app_server):
    from jobs import api

    names = [p["parameter_name"] for p in client.view_api(print_info=False, return_format="dict")
             ["named_endpoints"]["/submit"]["parameters"]]
    assert names == ["preset", "name", *forms.KEYS]  # no param_3 ... param_26
    scope = {}
    exec(documented_example(app_server["url"]), scope)  # noqa: S102  (our own documentation)
    run = api.get_run(int(scope["run_id"]))
    try:
        assert run["algorithm"] == "diffusionnft" and run["iterations"] == 20 and run["name"] == "nft short"
        preset = forms.preset_values("DiffusionNFT · built-in model")
        assert run["config"]["train"]["learning_rate"] == preset["learning_rate"]  # left out: the preset's
        assert run["config"]["train"]["checkpoint_every"] < 20 and run["config"]["train"]["sample_every"] < 20
    finally:
        api.cancel(run["id"])


@pytest.mark.parametrize("preset", [label for label in forms.PRESETS if "built-in" in label])
def test_each_built_in_preset_queues_its_own_algorithm(client, preset):
    from jobs import api

    _, run_id = client.predict(preset=preset, iterations=2, api_name="/submit")
    run = api.get_run(int(run_id))
    api.cancel(run["id"])  # only what was queued matters here
    assert run["algorithm"] == forms.preset_values(preset)["algorithm"]
    assert all(run["config"]["algorithm"][key] == value for key, value in forms.preset_config(preset)["algorithm"].items())
    assert run["config"]["train"]["iterations"] == 2


def test_train_longer_through_the_api(client):
    """The run the first test trained (4 iterations) goes on for 2 more: iterations 5 and 6."""
    from jobs import api

    done = next(r for r in runs(client) if r["name"] == "api run" and r["status"] == "completed")
    before = api.latest_metrics(done["id"])
    message = client.predict(str(done["id"]), 2, api_name="/train_longer")
    assert "iterations 5–6 of 6, its 4 done kept" in message
    row = wait_status(client, done["id"], ("completed", "failed"))
    assert row["status"] == "completed" and row["progress"].startswith("6/6")
    after = api.latest_metrics(done["id"])
    assert [m["iteration"] for m in after] == list(range(6)) and after[:4] == before
