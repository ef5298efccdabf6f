"""The Runs tab's live log: the last lines of the run's log.txt, bounded, with paths and secrets
redacted for everyone, and hidden from sessions that have not logged in when a login is set."""
import sys

import pytest

from app import log_tail
from jobs import runs, settings
from jobs.testing import fake_config

SECRET = "pg-pass-93f1"


def logged(store_text: str) -> int:
    run_id = runs.create(fake_config())
    folder = settings.run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.txt").write_text(store_text)
    return run_id


def test_the_log_is_bounded_and_redacted(store, monkeypatch):
    monkeypatch.setenv("G2RPO_DATABASE_TEST_PASSWORD", SECRET)
    monkeypatch.setenv("HF_TOKEN", "hf_" + "a" * 34)
    run_id = runs.create(fake_config())
    folder, site = settings.run_dir(run_id), f"{sys.prefix}/lib/python3.11/site-packages"
    lines = [f"line {i}" for i in range(300)] + [
        f"run {run_id}: iterations 0..99 on cpu (CUDA_VISIBLE_DEVICES=unset)",
        f'  File "{site}/torch/nn/modules/module.py", line 1736, in _call_impl',
        f"saved {folder}/checkpoints/iter_000010 in {settings.data_dir()}",
        f"could not reach postgresql+psycopg://g2rpo:{SECRET}@db.internal:5432/runs",
        "token hf_" + "a" * 34 + " refused, and hf_" + "b" * 34,  # the environment's, and one it does not hold
        "elsewhere /srv/private/cache/weights.bin and https://huggingface.co/api/models stays",
        "x" * 1000]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.txt").write_text("\n".join(lines) + "\n")
    text = log_tail.tail(run_id, 8)
    shown = text.splitlines()
    assert len(shown) == 8 and shown[0] == "line 299"
    assert '"<python>/torch/nn/modules/module.py"' in text  # site-packages, the most specific place
    assert "saved <run>/checkpoints/iter_000010 in <data>" in text
    assert "postgresql+psycopg://[redacted]@db.internal:5432/runs" in text and SECRET not in text
    assert "token [redacted] refused, and hf_[redacted]" in text
    assert "…/cache/weights.bin" in text and "/srv/private" not in text
    assert "https://huggingface.co/api/models" in text  # a URL is no path of this machine
    assert len(shown[-1]) == log_tail.LINE_CHARS and shown[-1].endswith("…")
    assert str(settings.data_dir()) not in text and sys.prefix not in text


def test_with_a_password_only_a_logged_in_session_reads_the_log(store, monkeypatch):
    import gradio as gr

    run_id = logged("run started\n")
    assert log_tail.log_page(None, False, run_id) == "run started"  # no login configured: the page shows it
    monkeypatch.setenv("G2RPO_PASSWORD", "s3cret")
    assert log_tail.log_page(None, False, run_id) == log_tail.HIDDEN
    with pytest.raises(gr.Error, match="Log in first"):
        log_tail.log_api(None, False, run_id)
    assert log_tail.log_page(None, True, run_id) == "run started"
    assert log_tail.log_page(None, True, run_id, 0).startswith("⚠️ Lines must be a whole number in 1 .. 200, got 0")
    assert log_tail.log_page(None, True, 999_999).startswith("⚠️ no run 999999")
    assert "no log yet" in log_tail.log_page(None, True, runs.create(fake_config()))
