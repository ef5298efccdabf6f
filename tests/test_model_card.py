"""The exported LoRA folder: its model card parses as the Hub's format and states what the database
holds, the folder loads in the stock diffusers pipeline, and a push without a token (or without
the Hub) says so and uploads nothing."""
import json

import pytest
import torch
from huggingface_hub import ModelCard

from engine.config import load_config
from engine.training.model_card import CardFacts, lora_card
from jobs import api, db, queries, runs, settings
from jobs.testing import one_torch_thread
from tests.test_pipeline_models import PROMPTS, stock_images, stock_pipeline, tiny_config
from tests.tiny_pipelines import save_tiny_flux


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A LoRA run on a tiny FLUX.1-dev-shaped pipeline, trained through the job path (the database
    sink), then exported as a folder. Yields {run_id, pipeline, lora, checkpoint}."""
    root = tmp_path_factory.mktemp("card")
    pipeline = save_tiny_flux(root / "flux")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("G2RPO_DATA_DIR", str(root / "data"))
        env.delenv("G2RPO_DATABASE_URL", raising=False)
        db.dispose_all()
        from jobs import child

        cfg = tiny_config({"flux": pipeline}, "flux", "train.learning_rate=0.05", "algorithm.clip_range=10",
                          "train.sample_every=2", "train.eval_every=1", f"eval_prompts={json.dumps(PROMPTS[1:])}",
                          "eval_rewards=[saturation]")
        run_id = runs.create(cfg.to_dict())
        with one_torch_thread():
            child.train(run_id)
        out = api.export(run_id, root / "export")
        yield {"run_id": run_id, "pipeline": pipeline, "lora": out / "lora",
               "checkpoint": settings.run_dir(run_id) / runs.get(run_id).last_checkpoint}
        db.dispose_all()


def test_the_card_parses_as_a_hub_model_card_and_states_the_databases_scores(exported):
    card = ModelCard.load(exported["lora"] / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "diffusers" and data["pipeline_tag"] == "text-to-image"
    assert {"lora", "text-to-image", "diffusers", "g2rpo", "flux"} <= set(data["tags"])
    assert "base_model" not in data  # a local folder is no Hub id
    (image,) = data["widget"]  # the newest sample (sample_prompts has one prompt) travels with the LoRA
    assert image["text"] == PROMPTS[0] and (exported["lora"] / image["output"]["url"]).exists()

    run_id = exported["run_id"]
    metrics = queries.latest_metrics(run_id)
    first, last = (f"{m['rewards']['brightness']['mean']:.4f}" for m in (metrics[0], metrics[-1]))
    assert f"| brightness | {first} | {last} |" in card.text
    evaluations = queries.evaluations(run_id)
    base, tuned = evaluations[0], evaluations[-1]
    assert base["trained"] == 0 and tuned["trained"] == 2
    assert (f"| brightness | {base['scores']['brightness']:.4f} | {tuned['scores']['brightness']:.4f} |"
            in card.text)
    assert "| `algorithm.granularities` | 1, 2 |" in card.text and "window_size" not in card.text  # g2rpo's own
    assert "pipe.load_lora_weights(" in card.text and "FluxPipeline.from_pretrained(" in card.text
    # the checkpoint the engine wrote carries a card of its own, with the same scores
    assert f"| brightness | {first} | {last} |" in ModelCard.load(exported["checkpoint"] / "README.md").text


def test_the_exported_folder_loads_in_the_stock_pipeline(exported):
    noise = torch.stack([torch.randn((64, 16), generator=torch.Generator().manual_seed(s)) for s in (0, 1)])
    base = stock_images(stock_pipeline("flux", exported["pipeline"]), "flux", noise)
    tuned = stock_images(stock_pipeline("flux", exported["pipeline"], exported["lora"]), "flux", noise)
    assert (tuned - base).abs().max() > 0.01, "load_lora_weights loaded nothing from the exported folder"


def test_a_hub_base_model_is_named_in_the_metadata():
    cfg = load_config(None, ["model.name=builtin", "algorithm.name=diffusionnft"]).to_dict()
    for name, hub_id in (("flux", "black-forest-labs/FLUX.1-dev"), ("sd3", "stabilityai/stable-diffusion-3.5-large")):
        config = {**cfg, "model": {**cfg["model"], "name": name, "path": None if name == "flux" else hub_id}}
        card = ModelCard(str(lora_card(config, CardFacts(), 10, repo_id="someone/a-lora")))
        assert card.data.base_model == hub_id and name in card.data.tags and "diffusionnft" in card.data.tags
        assert 'pipe.load_lora_weights("someone/a-lora")' in card.text
        assert "nft_beta" in card.text and "clip_range" not in card.text  # DiffusionNFT's settings, not the SDE ones
    builtin = ModelCard(str(lora_card(cfg, CardFacts(), 10)))
    assert builtin.data.base_model is None and "python -m engine.evaluate" in builtin.text


@pytest.fixture
def tokenless(monkeypatch, tmp_path, exported):
    """No Hugging Face token anywhere (environment or login file); the exported run's data folder."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    monkeypatch.setenv("G2RPO_DATA_DIR", str(settings.run_dir(exported["run_id"]).parent.parent))
    return exported["run_id"]


def test_a_push_without_a_token_is_refused_before_any_contact(tokenless, monkeypatch, capsys):
    from huggingface_hub import HfApi

    from jobs.__main__ import main

    def contacted(*args, **kwargs):
        raise AssertionError("the Hub was contacted")

    for name in ("create_repo", "upload_folder", "create_commit"):
        monkeypatch.setattr(HfApi, name, contacted)
    with pytest.raises(api.JobError, match="needs a Hugging Face token.*HF_TOKEN.*nothing was uploaded"):
        api.push(tokenless, "someone/a-lora")
    assert main(["push", str(tokenless), "someone/a-lora"]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err
    with pytest.raises(api.JobError, match="not a Hub repository id"):
        api.push(tokenless, "not a repo id")

    import gradio as gr

    from app.runs_tab import push  # the Runs tab's button: the same refusal, in its message line
    with pytest.raises(gr.Error, match="Name the Hub repository"):
        push(None, True, tokenless, "  ")
    with pytest.raises(gr.Error, match="needs a Hugging Face token"):
        push(None, True, tokenless, "someone/a-lora")


def test_a_push_that_cannot_reach_the_hub_says_so_and_uploads_nothing(tokenless, monkeypatch, capsys):
    import socket

    from huggingface_hub import constants

    from jobs.__main__ import main

    with socket.socket() as s:  # a port nothing listens on: every connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(api.HubError, match="could not create the repository someone/a-lora.*Nothing of this push"):
        api.push(tokenless, "someone/a-lora")
    assert main(["push", str(tokenless), "someone/a-lora"]) == 1
    assert "Nothing of this push was uploaded" in capsys.readouterr().err


def test_a_push_uploads_the_lora_folder_in_one_commit_with_a_card_naming_the_repository(tokenless, monkeypatch):
    """What reaches the Hub client: one upload_folder call with the weights, the card and its images
    (the Hub's side is not contacted: the client's two calls are recorded instead)."""
    from huggingface_hub import HfApi

    calls = []
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create_repo", repo_id, kw)))

    def upload_folder(self, repo_id, folder_path, **kw):
        files = sorted(str(p.relative_to(folder_path)) for p in folder_path.rglob("*") if p.is_file())
        calls.append(("upload_folder", repo_id, files, (folder_path / "README.md").read_text()))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/0"})()

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert api.push(tokenless, "someone/a-lora") == "https://huggingface.co/someone/a-lora/commit/0"
    (create, upload) = calls
    assert create[:2] == ("create_repo", "someone/a-lora") and create[2]["exist_ok"] is True
    _, repo, files, card = upload
    assert files == ["README.md", "images/00.png", "pytorch_lora_weights.safetensors"]
    assert '# someone/a-lora' in card and 'pipe.load_lora_weights("someone/a-lora")' in card
