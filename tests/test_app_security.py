"""What a visitor of a public Space can reach over HTTP: with a password set and a data folder
holding a trained run, the database, queue, log, checkpoints and exports are refused (403/404)
while the run's sample images load; downloads and the log need the login; failed logins are rate limited."""
import io
import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from app import auth
from jobs import api
from tests.test_app_api import PRESET, form, wait_status

PASSWORD = "s3cret"


@pytest.fixture(scope="module")
def trained(app_server):
    """A run trained by the app's worker (so its folder has everything a run leaves: log,
    records, samples, checkpoints), plus the CLI's default export of it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("G2RPO_PASSWORD", PASSWORD)
        client = Client(app_server["url"], verbose=False)
        assert client.predict(PASSWORD, api_name="/login").startswith("Logged in")
        _, run_id = client.predict(PRESET, "served", *form(iterations=2, eval_every=0, sample_every=1,
                                                            checkpoint_every=1), api_name="/submit")
        run_id = int(run_id)
        assert wait_status(client, run_id, ("completed", "failed"))["status"] == "completed"
        client.close()
    export = api.export(run_id)  # data/exports/run-N.zip, as `python -m jobs export` writes it
    return {"id": run_id, "folder": Path(api.get_run(run_id)["folder"]), "export": export}


def fetch(app_server, path) -> httpx.Response:
    return httpx.get(f"{app_server['url']}gradio_api/file={path}", timeout=30)


def call(app_server, api_name: str, *data) -> list:
    """The app's REST API (what a browser or curl uses): returns the output payloads."""
    base = f"{app_server['url']}gradio_api/call/{api_name}"
    event = httpx.post(base, json={"data": list(data)}, timeout=30).json()["event_id"]
    with httpx.stream("GET", f"{base}/{event}", timeout=120) as stream:
        lines = [line for line in stream.iter_lines() if line.startswith("data:")]
    return json.loads(lines[-1].removeprefix("data:"))


def test_the_data_folder_is_refused_and_the_samples_load(app_server, trained, monkeypatch):
    monkeypatch.setenv("G2RPO_PASSWORD", PASSWORD)
    data, folder = app_server["data"], trained["folder"]
    checkpoint = sorted((folder / "checkpoints").iterdir())[-1]
    private = [data / "g2rpo.db", data / "g2rpo.db-wal", data / "queue.db", folder / "log.txt",
               folder / "records.jsonl", folder / "config.yaml", checkpoint / "training_state.pt",
               checkpoint / "trainable.safetensors", checkpoint / "pytorch_lora_weights.safetensors",
               trained["export"]]
    tried = 0
    for path in private:
        assert path.exists(), path  # each is really there: refused, not missing
        for form_ in (str(path), f"{path.parent}/../{path.parent.name}/{path.name}", str(path).replace("/", "%2F")):
            response = fetch(app_server, form_)
            assert response.status_code in (403, 404), (form_, response.status_code)
            assert b"SQLite" not in response.content and b"iteration" not in response.content
            tried += 1
    print(f"\n{tried} requests for {len(private)} private files: all refused")

    (gallery,) = call(app_server, "samples", trained["id"])
    assert len(gallery) >= 4
    for item in gallery:
        response = httpx.get(item["image"]["url"], timeout=30)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(response.content)).size == (32, 32)
    newest = sorted((folder / "samples").iterdir())[-1] / "00.png"
    first = Image.open(io.BytesIO(httpx.get(gallery[0]["image"]["url"], timeout=30).content))
    assert np.array_equal(np.asarray(first), np.asarray(Image.open(newest).convert("RGB")))  # the very pixels


def test_downloads_need_the_login(app_server, trained, monkeypatch):
    monkeypatch.setenv("G2RPO_PASSWORD", PASSWORD)
    client = Client(app_server["url"], verbose=False)
    try:
        with pytest.raises(Exception, match="Log in first"):
            client.predict(trained["id"], api_name="/download")
        assert client.predict(PASSWORD, api_name="/login").startswith("Logged in")
        assert Path(client.predict(trained["id"], api_name="/download")).stat().st_size > 0
        with pytest.raises(Exception, match="no run 999999"):
            client.predict(999_999, api_name="/download")
    finally:
        client.close()


def test_the_log_needs_the_login_and_names_no_folder_of_this_machine(app_server, trained, monkeypatch):
    monkeypatch.setenv("G2RPO_PASSWORD", PASSWORD)
    client = Client(app_server["url"], verbose=False)
    try:
        with pytest.raises(Exception, match="Log in first"):
            client.predict(trained["id"], 50, api_name="/log")
        assert client.predict(PASSWORD, api_name="/login").startswith("Logged in")
        log = client.predict(trained["id"], 50, api_name="/log")
        assert f"run {trained['id']}: training iterations 1–2" in log and f"run {trained['id']}: done" in log
        raw = (trained["folder"] / "log.txt").read_text()
        assert str(app_server["data"]) not in log and str(Path.home()) not in log
        assert len(log.splitlines()) <= min(50, len(raw.splitlines()))
    finally:
        client.close()


def test_failed_logins_are_rate_limited_with_a_growing_delay(app_server, monkeypatch):
    monkeypatch.setenv("G2RPO_PASSWORD", PASSWORD)
    monkeypatch.setenv("G2RPO_LOGIN_DELAY_S", "1")
    client = Client(app_server["url"], verbose=False)
    try:
        for _ in range(auth.LOGIN_FREE_ATTEMPTS - 1):
            assert client.predict("wrong", api_name="/login") == "Wrong password."
        assert client.predict("wrong", api_name="/login") == "Wrong password. Next attempt in 1 s."
        start, refused = time.monotonic(), 0
        while time.monotonic() - start < 0.7:  # a burst of attempts, the right password among them
            message = client.predict(PASSWORD, api_name="/login")
            assert message.startswith("Too many wrong passwords: wait"), message
            refused += 1
        assert refused >= 2
        time.sleep(1)
        assert client.predict("wrong", api_name="/login") == "Wrong password. Next attempt in 2 s."
        time.sleep(0.5)
        assert client.predict(PASSWORD, api_name="/login").startswith("Too many wrong passwords")
        time.sleep(1.6)
        assert client.predict(PASSWORD, api_name="/login").startswith("Logged in")  # and the count resets
        assert client.predict("wrong", api_name="/login") == "Wrong password."
        assert client.predict(PASSWORD, api_name="/login").startswith("Logged in")
    finally:
        client.close()


def test_the_delay_doubles_to_a_cap_and_only_an_allow_listed_hf_account_passes(monkeypatch):
    waits = [auth.wait_s(n) for n in range(1, 20)]
    assert waits[:auth.LOGIN_FREE_ATTEMPTS - 1] == [0, 0] and waits[2:6] == [1, 2, 4, 8] and waits[-1] == 600
    import gradio as gr

    profile = gr.OAuthProfile({"name": "A", "preferred_username": "Alice", "profile": "", "picture": "",
                               "orgs": [{"preferred_username": "lab", "name": "Lab"}]})
    assert not auth.allowed(profile)  # not on a Space with OAuth: never
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("OAUTH_CLIENT_ID", "x")
    monkeypatch.setenv("G2RPO_HF_USERS", "bob")
    assert auth.oauth_offered() and auth.required() and not auth.allowed(profile) and not auth.allowed(None)
    monkeypatch.setenv("G2RPO_HF_USERS", "bob, alice")
    assert auth.allowed(profile)
    monkeypatch.setenv("G2RPO_HF_USERS", "")
    monkeypatch.setenv("G2RPO_HF_ORGS", "lab")
    assert auth.allowed(profile)
    with pytest.raises(gr.Error, match="sign in with Hugging Face"):
        auth.guard(False, None)
    auth.guard(False, profile)


def test_the_hugging_face_button_is_offered_only_on_a_space_with_oauth_and_an_allow_list(monkeypatch):
    """As on a Space with hf_oauth: true (Hugging Face sets these variables; gradio reads them at import)."""
    import gradio as gr
    import gradio.oauth

    from app.ui import build_demo

    space = {"SYSTEM": "spaces", "SPACE_ID": "me/g2rpo", "OAUTH_CLIENT_ID": "id", "OAUTH_CLIENT_SECRET": "secret",
             "OAUTH_SCOPES": "openid profile", "OPENID_PROVIDER_URL": "https://huggingface.co"}
    for key, value in space.items():
        monkeypatch.setenv(key, value)
        monkeypatch.setattr(gradio.oauth, key, value, raising=False)

    def buttons():
        return [b for b in build_demo().blocks.values() if isinstance(b, gr.LoginButton)]

    assert buttons() == []  # no allow-list: any account could sign in, so none is offered
    monkeypatch.setenv("G2RPO_HF_ORGS", "my-lab")
    assert len(buttons()) == 1
