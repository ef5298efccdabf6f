"""On a Space with persistent storage the data folder and the Hugging Face cache live on it
(G2RPO_SPACE_STORAGE points the mount check at a temporary folder standing in for /data)."""
import json
import os
import subprocess
import sys

from jobs import settings
from jobs.testing import REPO


def test_the_data_folder_follows_the_space_storage(tmp_path, monkeypatch):
    mount = tmp_path / "mount"
    mount.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("G2RPO_DATA_DIR", raising=False)
    monkeypatch.setenv("G2RPO_SPACE_STORAGE", str(mount))
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert settings.data_dir() == tmp_path / "data"  # not on a Space: a /data folder is not taken over
    monkeypatch.setenv("SPACE_ID", "someone/g2rpo")
    assert settings.data_dir() == mount / "g2rpo"
    monkeypatch.setenv("G2RPO_DATA_DIR", str(tmp_path / "chosen"))
    assert settings.data_dir() == tmp_path / "chosen"  # an explicit folder wins
    monkeypatch.delenv("G2RPO_DATA_DIR")
    monkeypatch.setenv("G2RPO_SPACE_STORAGE", str(tmp_path / "not-mounted"))
    assert settings.data_dir() == tmp_path / "data"  # a Space without persistent storage


def test_the_app_puts_its_database_and_the_hub_cache_on_the_space_storage(tmp_path):
    """`python app.py`'s entry point, up to serving: the database is created on the storage and
    huggingface_hub (imported after, by gradio) sees HF_HOME beside it; an HF_HOME set is kept."""
    mount = tmp_path / "mount"
    mount.mkdir()
    code = ("import json, os, sys; from app import server\n"
            "def serve(*args, **kwargs):\n"
            "    import huggingface_hub.constants as c; from jobs import settings\n"
            "    print(json.dumps([str(settings.data_dir()), c.HF_HOME, os.environ['HF_HOME']])); sys.exit(0)\n"
            "server.serve = serve; server.main([])")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HOME", "G2RPO_DATA_DIR", "G2RPO_DATABASE_URL")}
    env.update(SPACE_ID="someone/g2rpo", G2RPO_SPACE_STORAGE=str(mount), G2RPO_WORKER="external", PYTHONPATH=str(REPO))

    def run(**extra):
        out = subprocess.run([sys.executable, "-c", code], env={**env, **extra}, cwd=tmp_path, check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out.splitlines()[-1])

    data, hf_home, variable = run()
    assert data == str(mount / "g2rpo") and (mount / "g2rpo" / "g2rpo.db").exists()
    assert hf_home == variable == str(mount / ".huggingface")
    _, hf_home, _ = run(HF_HOME=str(tmp_path / "own-cache"))
    assert hf_home == str(tmp_path / "own-cache")
