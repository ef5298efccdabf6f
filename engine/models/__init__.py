"""Model registry: configs name a model; each name maps to an adapter behind `FlowModel`.

- `builtin`: the pretrained small text-to-image model of the shapes world (32x32, ships with the code).
- `tiny-flux`: the same architecture with seeded random weights (16x16, or model.resolution), for tests and cost tables.
- `flux`: FLUX.1-dev / FLUX.1-schnell through diffusers (hub id or local folder in model.path).
- `sd3`: Stable Diffusion 3.5 Medium / Large through diffusers.

Validation (`model_problems`, `check_model_prompts`) runs in the torch-free UI process.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # validation (below) runs in the torch-free UI process; only build_model needs torch
    from engine.models.base import FlowModel

SMALL_MODELS = ("builtin", "tiny-flux")
PIPELINE_MODELS = {"flux": "engine.models.flux:Flux", "sd3": "engine.models.sd3:SD3"}
# The pipeline adapters' defaults (their classes read them; the model card reads them without torch).
PIPELINE_DEFAULTS = {
    "flux": {"path": "black-forest-labs/FLUX.1-dev", "resolution": 720, "guidance": 3.5},  # the authors' resolution
    "sd3": {"path": "stabilityai/stable-diffusion-3.5-medium", "resolution": 512, "guidance": 4.5},  # Flow-GRPO's
}
DEFAULT_PATHS = {name: d["path"] for name, d in PIPELINE_DEFAULTS.items()}


def model_names() -> list[str]:
    return [*SMALL_MODELS, *PIPELINE_MODELS]


def _spec(name: str, resolution: int | None = None):
    from engine.models.spec import TinyFluxSpec, builtin_spec

    return builtin_spec() if name == "builtin" else TinyFluxSpec(resolution=resolution or 16)


def build_model(cfg, full_finetune: bool = False) -> FlowModel:
    """Build the adapter named by a ModelConfig (`full_finetune`: keep the transformer in float32)."""
    import importlib

    import torch

    if cfg.name == "builtin":
        from engine.models.builtin import load_builtin

        return load_builtin()
    if cfg.name == "tiny-flux":
        from engine.models.tiny_flux import TinyFlux

        with torch.random.fork_rng(devices=[]):  # the same random weights every time
            torch.manual_seed(0)
            return TinyFlux(_spec(cfg.name, cfg.resolution))
    if cfg.name in PIPELINE_MODELS:
        module, cls = PIPELINE_MODELS[cfg.name].split(":")
        return getattr(importlib.import_module(module), cls)(cfg, full_finetune)
    raise ValueError(f"unknown model {cfg.name!r}; known: {', '.join(model_names())}")


def model_problems(cfg) -> list[str]:
    """What stops the model in ModelConfig `cfg` from loading, found without loading it."""
    from engine.training.hub import check_source

    if cfg.name not in model_names():
        return [f"model.name: unknown model {cfg.name!r}; known: {', '.join(model_names())}"]
    problems = []
    if cfg.name in SMALL_MODELS:
        if cfg.name == "tiny-flux" and cfg.resolution is not None and (cfg.resolution < 4 or cfg.resolution % 2):
            problems.append(f"model.resolution: tiny-flux takes an even resolution >= 4 (2x2 patches), got {cfg.resolution}")
        fixed = ("path", "guidance") if cfg.name == "tiny-flux" else ("path", "resolution", "guidance")
        for key in fixed:
            if getattr(cfg, key) is not None:
                problems.append(f"model.{key}: the {cfg.name} model has a fixed {key}; leave it out")
        if cfg.free_text_encoders or cfg.gradient_checkpointing:
            problems.append(f"model: free_text_encoders and gradient_checkpointing are for flux and sd3, not {cfg.name}")
        return problems
    if cfg.resolution is not None and (cfg.resolution < 16 or cfg.resolution % 16):
        problems.append(f"model.resolution: must be a multiple of 16 (VAE 8x, then 2x2 patches), got {cfg.resolution}")
    if cfg.dtype not in ("auto", "float32", "bfloat16", "float16"):
        problems.append(f"model.dtype: 'auto', 'float32', 'bfloat16' or 'float16', got {cfg.dtype!r}")
    if not 1 <= cfg.max_sequence_length <= 512:
        problems.append(f"model.max_sequence_length: 1..512 T5 tokens, got {cfg.max_sequence_length}")
    problem = check_source(cfg.path or DEFAULT_PATHS[cfg.name], "model_index.json", "model.path")
    return problems + ([problem] if problem else [])


def check_model_prompts(cfg, prompts: list[str], quote: bool = True) -> None:
    """Raise ValueError for prompts the model cannot encode, without loading any weights (`quote`:
    whether the message may quote the prompt; not for prompts read from a file)."""
    if cfg.name in PIPELINE_MODELS:  # the tokenizers take any text (T5 truncates, as the pipeline does)
        for prompt in prompts:
            if not prompt.strip():
                raise ValueError("empty prompt")
        return
    from engine.models.spec import check_prompt

    spec = _spec(cfg.name)
    for prompt in prompts:
        check_prompt(prompt, spec.vocabulary, spec.max_words, quote)
