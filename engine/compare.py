"""Base and tuned images from the same prompt and the same noise, scored by every reward.

    generate(model={"name": "builtin"}, adapters=[None, "data/runs/3/checkpoints/iter_000300"],
             prompts=["a red circle on a black background"], seeds=[0, 1], rewards=["preference"])

Each (adapter, prompt, seed) is sampled by the deterministic ODE sampler from noise fixed by the
seed alone, so base and tuned, or two runs, differ only by their weights. `None` is the base model;
an adapter is a LoRA folder (an absolute path) or a Hub id, downloaded into the Hugging Face cache.
The model is loaded once per process and each LoRA once, as a named adapter that is switched on
for its own rows (the UI runs this in a separate process that keeps them between requests).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from engine.training.checkpoint import LORA_WEIGHTS
from engine.config import ModelConfig
from engine.models import build_model
from engine.models.base import VelocityRunner
from engine.rewards import build_reward
from engine.method.rollout import ode_images
from engine.method.sampling import sigma_grid

_models: dict[str, object] = {}  # model config -> loaded model (with its adapters)
_rewards: dict[str, object] = {}


def _model(config: dict):
    """The model a run trained (its config's `model` section), loaded once per process."""
    key = repr(sorted(config.items()))
    if key not in _models:
        model = build_model(ModelConfig(**config))
        _models[key] = model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    return _models[key]


def _activate(model, adapter: str | None) -> None:
    """Switch the model to one LoRA folder (loaded on first use) or to the base weights."""
    transformer = model.transformer
    if adapter is None:
        if getattr(transformer, "peft_config", None):
            transformer.disable_lora()
        return
    folder = _lora_folder(adapter)
    if not (folder / LORA_WEIGHTS).exists():
        raise FileNotFoundError(f"no LoRA weights ({LORA_WEIGHTS}) in {folder}")
    name = "lora_" + hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
    if name not in (getattr(transformer, "peft_config", None) or {}):
        transformer.load_lora_adapter(str(folder), prefix="transformer", weight_name=LORA_WEIGHTS, adapter_name=name)
    transformer.enable_lora()
    transformer.set_adapters([name])


def _lora_folder(adapter: str) -> Path:
    """The LoRA's folder: the path itself, or a Hub LoRA's weights fetched into the Hugging Face cache."""
    if Path(adapter).is_absolute():
        return Path(adapter)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(adapter, allow_patterns=[LORA_WEIGHTS]))


def sample_from_noise(model, prompts: list[str], noise: torch.Tensor, steps: int, shift: float,
                      micro_batch: int = 64) -> torch.Tensor:
    """ODE samples [len(prompts), 3, H, W] in [0, 1] of prompts[i] from noise[i]."""
    return ode_images(VelocityRunner(model, micro_batch), prompts, noise, sigma_grid(steps, shift).float()).float().cpu()


def sample(model, prompts: list[str], seeds: list[int], steps: int, shift: float, micro_batch: int = 64) -> torch.Tensor:
    """ODE samples [len(prompts) * len(seeds), 3, H, W] in [0, 1], prompt-major; noise from the seed only."""
    noise = torch.stack([torch.randn(model.latent_shape, generator=torch.Generator().manual_seed(seed))
                         for _ in prompts for seed in seeds])
    return sample_from_noise(model, [p for p in prompts for _ in seeds], noise, steps, shift, micro_batch)


def generate(model: dict, adapters: list[str | None], prompts: list[str], seeds: list[int],
             rewards: list[str], steps: int = 16, shift: float = 3.0) -> list[dict]:
    """One row per (adapter, prompt, seed): {adapter, prompt, seed, image (uint8 HxWx3), scores}."""
    flow = _model(model)
    for name in rewards:
        if name not in _rewards:
            _rewards[name] = build_reward(name)
    scorers = [_rewards[name] for name in rewards]
    rows = []
    for adapter in adapters:
        _activate(flow, adapter)
        images = sample(flow, prompts, seeds, steps, shift)
        labels = [p for p in prompts for _ in seeds]
        scores = {r.name: r(images, labels).tolist() for r in scorers}
        pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for i, (prompt, seed) in enumerate((p, s) for p in prompts for s in seeds):
            rows.append({"adapter": adapter, "prompt": prompt, "seed": seed, "image": np.ascontiguousarray(pixels[i]),
                         "scores": {name: values[i] for name, values in scores.items()}})
    _activate(flow, None)
    return rows
