"""The built-in pretrained model: a 1.8M-parameter FLUX-class transformer on 32x32 pixel images of
the shapes world, trained by `python -m engine.models.pretrain`. Its weights ship with the code
(`engine/models/weights/builtin/`), so nothing is downloaded.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from safetensors.torch import load_file

from engine.models.spec import TinyFluxSpec, builtin_spec  # noqa: F401 (re-exported)
from engine.models.tiny_flux import TinyFlux

WEIGHTS = Path(__file__).parent / "weights" / "builtin"


def load_builtin(folder: Path = WEIGHTS) -> TinyFlux:
    folder = Path(folder)
    if not (folder / "model.safetensors").exists():
        raise FileNotFoundError(f"no built-in weights in {folder}; create them with `python -m engine.models.pretrain`")
    spec = TinyFluxSpec(**json.loads((folder / "spec.json").read_text()))
    model = TinyFlux(spec)
    model.load_state_dict({k: v.float() for k, v in load_file(folder / "model.safetensors").items()})
    return model.eval()


@lru_cache(maxsize=4)
def weights_sha256(folder: Path = WEIGHTS) -> str:
    """SHA-256 of the weights file: what a measurement on the built-in model names, so results from two
    different bases are never mixed (the study refuses them) and a table says which model it was."""
    return hashlib.sha256((Path(folder) / "model.safetensors").read_bytes()).hexdigest()

