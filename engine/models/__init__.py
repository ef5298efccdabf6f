"""Model registry: configs name a model; each name maps to an adapter behind `FlowModel`.

- `builtin`: the pretrained small text-to-image model of the shapes world (32x32, ships with the code).
- `tiny-flux`: the same architecture at 16x16 with seeded random weights, for fast engine tests.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # validation (below) runs in the torch-free UI process; only build_model needs torch
    from engine.models.base import FlowModel


def model_names() -> list[str]:
    return ["builtin", "tiny-flux"]


def _spec(name: str):
    from engine.models.spec import TinyFluxSpec, builtin_spec

    return builtin_spec() if name == "builtin" else TinyFluxSpec(resolution=16)


def build_model(cfg) -> FlowModel:
    """Build the adapter named by a ModelConfig."""
    import torch

    if cfg.name == "builtin":
        from engine.models.builtin import load_builtin

        return load_builtin()
    if cfg.name == "tiny-flux":
        from engine.models.tiny_flux import TinyFlux

        with torch.random.fork_rng(devices=[]):  # the same random weights every time
            torch.manual_seed(0)
            return TinyFlux(_spec(cfg.name))
    raise ValueError(f"unknown model {cfg.name!r}; known: {', '.join(model_names())}")


def check_model_prompts(cfg, prompts: list[str]) -> None:
    """Raise ValueError for prompts the model cannot encode, without loading any weights."""
    from engine.models.spec import check_prompt

    spec = _spec(cfg.name)
    for prompt in prompts:
        check_prompt(prompt, spec.vocabulary, spec.max_words)
