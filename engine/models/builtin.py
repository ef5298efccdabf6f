"""The built-in pretrained model: a 1.8M-parameter FLUX-class transformer on 32x32 pixel images of
the shapes world, trained by `python -m engine.models.pretrain`. Its weights ship with the code
(`engine/models/weights/builtin/`), so nothing is downloaded.
"""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from engine.models.tiny_flux import TinyFlux, TinyFluxSpec

WEIGHTS = Path(__file__).parent / "weights" / "builtin"


def builtin_spec() -> TinyFluxSpec:
    """The architecture the weights were trained with (tokens are 4x4 pixel patches)."""
    from engine.world import VOCABULARY

    return TinyFluxSpec(resolution=32, patch=4, num_layers=2, num_single_layers=2, num_heads=4, head_dim=32,
                        text_dim=64, max_words=10, vocabulary=list(VOCABULARY))


def load_builtin(folder: Path = WEIGHTS) -> TinyFlux:
    folder = Path(folder)
    if not (folder / "model.safetensors").exists():
        raise FileNotFoundError(f"no built-in weights in {folder}; create them with `python -m engine.models.pretrain`")
    spec = TinyFluxSpec(**json.loads((folder / "spec.json").read_text()))
    model = TinyFlux(spec)
    model.load_state_dict({k: v.float() for k, v in load_file(folder / "model.safetensors").items()})
    return model.eval()
