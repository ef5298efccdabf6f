"""Model registry: configs name a model; each name maps to an adapter behind `FlowModel`."""
from __future__ import annotations

import torch

from engine.models.base import FlowModel


def model_names() -> list[str]:
    return ["tiny-flux"]


def build_model(cfg) -> FlowModel:
    """Build the adapter named by a ModelConfig (random weights are seeded, so always the same)."""
    if cfg.name == "tiny-flux":
        from engine.models.tiny_flux import TinyFlux, TinyFluxSpec

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return TinyFlux(TinyFluxSpec(resolution=cfg.resolution))
    raise ValueError(f"unknown model {cfg.name!r}; known: {', '.join(model_names())}")


def check_model_prompts(cfg, prompts: list[str]) -> None:
    """Raise ValueError for prompts the model cannot encode, without loading any weights."""
    if cfg.name == "tiny-flux":
        from engine.models.tiny_flux import DEFAULT_VOCABULARY, WordEncoder, TinyFluxSpec

        encoder = WordEncoder.__new__(WordEncoder)  # vocabulary check only, no embedding table
        encoder.vocabulary, encoder.max_words = DEFAULT_VOCABULARY, TinyFluxSpec.max_words
        encoder.index = {w: i + 1 for i, w in enumerate(DEFAULT_VOCABULARY)}
        for prompt in prompts:
            encoder.check(prompt)
