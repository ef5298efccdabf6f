"""FLUX and SD3.5 adapters on tiny random pipelines of the real diffusers classes.

A G²RPO iteration runs end to end through each adapter, and the exported LoRA loads in the stock
diffusers pipeline, where it changes the output to exactly the engine's own tuned output.
"""
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from engine import compare
from engine.training.checkpoint import LORA_WEIGHTS
from engine.config import ConfigError, load_config
from engine.training.trainer import Trainer
from tests.tiny_pipelines import RESOLUTION, save_tiny_flux, save_tiny_sd3

PROMPTS = ["a red cat", "a dog in snow"]
STEPS = 4


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    return {"flux": save_tiny_flux(root / "flux"), "flux-schnell": save_tiny_flux(root / "schnell", guidance_embeds=False),
            "sd3": save_tiny_sd3(root / "sd3")}


def tiny_config(pipelines, which: str, *overrides: str):
    name = "sd3" if which == "sd3" else "flux"
    base = [f"model.name={name}", f"model.path={pipelines[which]}", f"model.resolution={RESOLUTION}",
            "model.max_sequence_length=16", "rewards=[{name: brightness}]", f"prompts={json.dumps(PROMPTS)}",
            f"sample_prompts={json.dumps(PROMPTS[:1])}", "algorithm.group_size=3", "algorithm.branch_steps=[0,1]",
            "algorithm.granularities=[1,2]", f"sampling.steps={STEPS}", "train.iterations=2",
            "train.checkpoint_every=2", "train.sample_every=1000", "lora.rank=4", "lora.alpha=16",
            "train.prompts_per_iteration=1"]
    return load_config("configs/g2rpo.yaml", base + list(overrides))


@pytest.mark.parametrize("which", ["flux", "flux-schnell", "sd3"])
def test_a_g2rpo_iteration_runs_through_the_adapter(pipelines, tmp_path, which):
    trainer = Trainer(tiny_config(pipelines, which), tmp_path)
    before = [p.detach().clone() for p in trainer.params]
    record = trainer.iteration(0)
    assert record["onpolicy_ratio_error"] == 0.0
    assert np.isfinite(record["reward"]["brightness"]["mean"]) and np.isfinite(record["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.params)), "the LoRA did not move"
    # One forward per (prompt, k) trains the whole group; SD3's classifier-free guidance doubles it.
    assert record["model_evaluations"]["train"] == 2 * (2 if which == "sd3" else 1)


def test_sd3_without_guidance_is_one_evaluation_per_sample(pipelines, tmp_path):
    record = Trainer(tiny_config(pipelines, "sd3", "model.guidance=1.0"), tmp_path).iteration(0)
    assert record["model_evaluations"]["train"] == 2


def stock_pipeline(which: str, folder, lora=None):
    from diffusers import FluxPipeline, StableDiffusion3Pipeline

    pipe = (StableDiffusion3Pipeline if which == "sd3" else FluxPipeline).from_pretrained(folder)
    if lora is not None:
        pipe.load_lora_weights(lora)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def stock_images(pipe, which: str, noise: torch.Tensor) -> torch.Tensor:
    """The stock pipeline's images for PROMPTS from the engine's noise on the engine's time grid."""
    # The scheduler shifts these by sampling.shift = 3 exactly as engine.method.sampling.sigma_grid does.
    sigmas = np.linspace(1.0, 1 / STEPS, STEPS)
    guidance = {"sd3": 4.5, "flux": 3.5}[which]
    out = pipe(PROMPTS, latents=noise, num_inference_steps=STEPS, sigmas=sigmas, guidance_scale=guidance,
               height=RESOLUTION, width=RESOLUTION, max_sequence_length=16, output_type="pt")
    return out.images.float()


@pytest.mark.parametrize("which", ["flux", "sd3"])
def test_exported_lora_loads_in_the_stock_pipeline(pipelines, tmp_path, which):
    cfg = tiny_config(pipelines, which, "train.learning_rate=0.05", "algorithm.clip_range=10")
    trainer = Trainer(cfg, tmp_path)
    trainer.run(progress=False)
    checkpoint = tmp_path / "checkpoints" / "iter_000002"

    # The adapter metadata travels with the weights, so alpha != rank reloads at the right scale.
    with safe_open(checkpoint / LORA_WEIGHTS, "pt") as f:
        metadata = json.loads(f.metadata()["lora_adapter_metadata"])
    assert metadata["transformer.r"] == 4 and metadata["transformer.lora_alpha"] == 16

    model = trainer.model.eval()
    noise = torch.stack([torch.randn(model.latent_shape, generator=torch.Generator().manual_seed(s)) for s in (0, 1)])
    engine_tuned = compare.sample_from_noise(model, PROMPTS, noise, STEPS, cfg.sampling.shift)
    with trainer.reference():
        engine_base = compare.sample_from_noise(model, PROMPTS, noise, STEPS, cfg.sampling.shift)

    stock_base = stock_images(stock_pipeline(which, pipelines[which]), which, noise)
    stock_tuned = stock_images(stock_pipeline(which, pipelines[which], checkpoint), which, noise)

    assert (stock_tuned - stock_base).abs().max() > 0.01, "the LoRA did not change the stock pipeline's output"
    torch.testing.assert_close(stock_base, engine_base, atol=2e-4, rtol=0)
    torch.testing.assert_close(stock_tuned, engine_tuned, atol=2e-4, rtol=0)


def test_unreachable_model_is_refused_at_validation(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as err:
        load_config(None, ["model.name=flux", "model.path=nobody/no-such-flux"])
    (problem,) = err.value.by_field()["model.path"]
    assert "nobody/no-such-flux" in problem and "hf download" in problem
    with pytest.raises(ConfigError, match="no such file or folder"):
        load_config(None, ["model.name=sd3", f"model.path={tmp_path / 'missing'}"])
    with pytest.raises(ConfigError, match="has no model_index.json"):
        load_config(None, ["model.name=flux", f"model.path={tmp_path}"])


def test_pipeline_settings_are_checked_before_loading(pipelines):
    with pytest.raises(ConfigError) as err:
        tiny_config(pipelines, "flux", "model.resolution=100", "model.dtype=float8", "model.max_sequence_length=1000")
    fields = err.value.by_field()
    assert {"model.resolution", "model.dtype", "model.max_sequence_length"} <= set(fields)
    with pytest.raises(ConfigError, match="fixed path"):
        load_config(None, ["model.name=builtin", "model.path=/tmp"])


def test_text_encoders_can_be_freed_after_encoding_every_prompt(pipelines, tmp_path):
    trainer = Trainer(tiny_config(pipelines, "flux", "model.free_text_encoders=true"), tmp_path)
    assert len(trainer.model.text_encoders) == 0 and trainer.model.pipe.text_encoder_2 is None
    assert trainer.iteration(0)["onpolicy_ratio_error"] == 0.0  # every prompt came from the cache
    with pytest.raises(ValueError, match="text encoders were freed"):
        trainer.model.encode_prompts(["a green dog"])


def test_the_flux_step_benchmark_runs_on_a_small_shape():
    from engine import bench_flux

    rows = bench_flux.main(["--size", "tiny", "--resolutions", "64", "96", "--text-tokens", "8", "--repeats", "1"])
    assert [(r["resolution"], r["tokens"]) for r in rows] == [(64, 16), (96, 36)]
    assert all(r["rollout_s"] > 0 and r["train_s"] > 0 for r in rows)
