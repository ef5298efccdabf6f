"""The bad-input corpus (tests/bad_inputs.yaml) replayed through every surface a user reaches:
`python -m engine.train`, `python -m jobs`, the jobs Python API and the app's HTTP API. Each case
must be refused with a message it names, in one piece (no traceback, no echo of what it must not
quote), with nothing stored or queued. The counts tried per surface are printed at the end of the
test session (tests/conftest.py)."""
import os
from collections import Counter
from pathlib import Path

import pytest
import yaml
from gradio_client import Client

from engine.train import main as engine_cli
from jobs import api, db, queue, runs
from jobs.__main__ import main as jobs_cli
from jobs.testing import SMALL, fake_config

CORPUS = yaml.safe_load((Path(__file__).parent / "bad_inputs.yaml").read_text())
TRIED: Counter = Counter()  # surface -> cases replayed (and refused) this session
SURFACES = ("engine", "jobs-cli", "api", "http")
LINES = ["a red circle on a black background"] * 100
PLACES = {"megabyte": "r" * 1_000_000, "hundred_prompts": ", ".join(f"'{p}'" for p in LINES),
          "hundred_lines": "\n".join(LINES), "digits": "1" + "0" * 5000, "big": 10**399}


def surfaces(case: dict) -> list[str]:
    if "surfaces" in case:
        return case["surfaces"]
    if "set" in case or "config_file" in case:
        return ["engine", "jobs-cli", "api"] + (["http"] if "form" in case else [])
    return [{"cli": "jobs-cli", "api": "api", "http": "http"}[k] for k in ("cli", "api", "http") if k in case]


def cases(surface: str) -> list:
    return [pytest.param(case, id=case["name"]) for case in CORPUS if surface in surfaces(case)]


def fill(value, places: dict):
    """The case with its {placeholders} filled in (strings only; a whole-string number stays a string,
    but a string that is just a placeholder of a number, as "{big}", becomes that number)."""
    if isinstance(value, str):
        for key, text in places.items():
            if value == f"{{{key}}}" and isinstance(text, int):
                return text
            value = value.replace(f"{{{key}}}", str(text))
        return value
    if isinstance(value, list):
        return [fill(v, places) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, places) for k, v in value.items()}
    return value


def check_message(case: dict, message: str) -> None:
    expected = case["message"] if isinstance(case["message"], list) else [case["message"]]
    assert any(text in message for text in expected), f"{case['name']}: {message[:600]}"
    assert "Traceback" not in message and len(message) < 3000, message[:3000]
    for text in case.get("never", []):
        assert text not in message, f"{case['name']} quotes {text!r}: {message[:600]}"


@pytest.fixture
def jobs_data(tmp_path, monkeypatch):
    """A data folder holding one run (so exports and ids have something real next to them)."""
    monkeypatch.setenv("G2RPO_DATA_DIR", str(tmp_path / "data"))
    for var in ("G2RPO_DATABASE_URL", "G2RPO_QUEUE_URL", "G2RPO_QUEUE_NAME"):
        monkeypatch.delenv(var, raising=False)
    run_id = runs.create(fake_config())
    existing = tmp_path / "existing.zip"
    existing.write_bytes(b"keep me")
    places = {**PLACES, "run": run_id, "file": existing, "data": tmp_path / "data"}
    yield places
    db.dispose_all()


def stored() -> tuple:
    return [r["id"] for r in api.list_runs()], queue.pending()


def replay_config(case: dict, places: dict, tmp_path: Path, monkeypatch, run) -> None:
    """A config case (`set` or `config_file`) through `run(config_path, overrides)`; env applied."""
    config = "configs/g2rpo.yaml"
    if "config_file" in case:
        config = tmp_path / "case.yaml"
        data = fill(case["config_file"], places)  # bytes (base64 in the corpus) or text
        config.write_bytes(data if isinstance(data, bytes) else data.encode())
    before = stored()
    with monkeypatch.context() as mp:
        for key, value in fill(case.get("env", {}), places).items():
            mp.setenv(key, value)
        db.dispose_all()  # a case's own data folder or database URL: a fresh engine
        run(str(config), fill(case.get("set", []), places))
    db.dispose_all()
    assert stored() == before


@pytest.mark.parametrize("case", cases("engine"))
def test_the_training_cli_refuses(case, jobs_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"

    def run(config, overrides):
        assert engine_cli(["--config", config, "--out", str(out), *sum((["--set", o] for o in overrides), [])]) == 2
    replay_config(case, jobs_data, tmp_path, monkeypatch, run)
    check_message(case, capsys.readouterr().err)
    assert not out.exists()
    TRIED["python -m engine.train"] += 1


@pytest.mark.parametrize("case", cases("jobs-cli"))
def test_the_jobs_cli_refuses(case, jobs_data, tmp_path, monkeypatch, capsys):
    if "cli" in case:
        before = stored()
        assert jobs_cli([str(arg) for arg in fill(case["cli"], jobs_data)]) == 2
        assert stored() == before and Path(jobs_data["file"]).read_bytes() == b"keep me"
    else:
        def run(config, overrides):
            assert jobs_cli(["submit", config, *sum((["--set", o] for o in overrides), [])]) == 2
        replay_config(case, jobs_data, tmp_path, monkeypatch, run)
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    check_message(case, err)
    TRIED["python -m jobs"] += 1


@pytest.mark.parametrize("case", cases("api"))
def test_the_jobs_api_refuses(case, jobs_data, tmp_path, monkeypatch):
    refusals = (api.ConfigError, api.JobError, api.StorageError)
    if "api" in case:
        before = stored()
        with pytest.raises(refusals) as err:
            getattr(api, case["api"]["call"])(*fill(case["api"]["args"], jobs_data))
        assert stored() == before
    else:
        def run(config, overrides):
            nonlocal err
            with pytest.raises(refusals) as err:
                api.submit(config, overrides)
        err = None
        replay_config(case, jobs_data, tmp_path, monkeypatch, run)
    check_message(case, str(err.value))
    TRIED["jobs API"] += 1


@pytest.fixture(scope="module")
def http(app_server):
    """A client of the running app, and a run with a checkpoint (trained here) to compare."""
    from jobs import child
    from jobs.testing import one_torch_thread

    run_id = runs.create(api.check_config("configs/g2rpo.yaml", SMALL + ["train.iterations=1",
                                                                        "train.checkpoint_every=1"]))
    with one_torch_thread():
        child.train(run_id)
    runs.finish(run_id, "completed", expected=("queued",))
    client = Client(app_server["url"], verbose=False)
    yield client, {**PLACES, "run": run_id}
    client.close()


@pytest.mark.parametrize("case", cases("http"))
def test_the_http_api_refuses(case, http):
    from tests.test_app_api import PRESET, form

    client, places = http
    before = stored()
    with pytest.raises(Exception) as err:
        if "form" in case:
            client.predict(PRESET, "bad input", *form(**fill(case["form"], places)), api_name="/submit")
        else:
            name, *args = fill(case["http"], places)
            client.predict(*[int(a) if isinstance(a, str) and a.isdigit() else a for a in args], api_name=name)
    message = str(err.value)
    assert "upstream app has raised an exception" not in message
    check_message(case, message)
    assert stored() == before
    TRIED["HTTP API (gradio_client)"] += 1


def test_the_corpus_covers_every_surface_with_at_least_40_cases():
    assert len(CORPUS) >= 40 and len({c["name"] for c in CORPUS}) == len(CORPUS)
    for surface in SURFACES:
        assert len(cases(surface)) >= 10, surface
    assert os.environ.get("G2RPO_MAX_STEPS") is None  # no case's environment leaked
