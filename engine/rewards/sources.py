"""Where the real reward models' weights come from, and what stops them loading (no torch here).

Configs are validated by the UI and the jobs API before a job is queued, so every check in this
file only looks at files, the Hugging Face cache and installed packages; the reward modules
import their defaults from here so there is one place that names them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.training.hub import check_source, is_local, missing_package

# The paper's CLIP score uses DFN5B CLIP ViT-H-14 at 378 px (the authors load it with open_clip as
# `hf-hub:apple/DFN5B-CLIP-ViT-H-14-384`). Its hub repo also holds a transformers CLIPModel
# (config.json + pytorch_model.bin, no model.safetensors) and the CLIP tokenizer, which is what we load.
CLIP_DEFAULT = "apple/DFN5B-CLIP-ViT-H-14-378"
PICKSCORE_DEFAULT = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"  # PickScore's base model, for folders without a tokenizer
HPS_DEFAULT = "xswu/HPSv2"
HPS_FILE = "HPS_v2.1_compressed.pt"
IMAGE_REWARD_DEFAULT = "THUDM/ImageReward"
IMAGE_REWARD_FILE = "ImageReward.pt"
BERT_TOKENIZER = "google-bert/bert-base-uncased"  # ImageReward's BLIP tokenises with bert-base-uncased

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")


def has_tokenizer(folder: str) -> bool:
    return any((Path(folder).expanduser() / f).exists() for f in TOKENIZER_FILES)


def weights_file(source: str, filename: str) -> str:
    """The local path of a single-file checkpoint given as a file, a folder holding `filename`, or a
    hub repo holding it (downloaded into the Hugging Face cache unless it is there already)."""
    if is_local(source):
        path = Path(source).expanduser()
        return str(path / filename if path.is_dir() else path)
    from huggingface_hub import hf_hub_download

    return hf_hub_download(source, filename)


def _folder(source: str, required: str, what: str) -> list[str]:
    """A transformers folder or hub repo (not a single file)."""
    if is_local(source) and Path(source).expanduser().is_file():
        return [f"{what}: {source!r} is a file; give the folder (or hub id) that holds {required}"]
    return [p] if (p := check_source(source, required, what)) else []


def _checkpoint(source: str, filename: str, what: str) -> list[str]:
    """A single checkpoint file: a path to it, a folder holding `filename`, or a hub repo holding it."""
    is_file = is_local(source) and Path(source).expanduser().is_file()
    return [p] if (p := check_source(source, "" if is_file else filename, what)) else []


def _clip_score(model: str | None) -> list[str]:
    return _folder(model or CLIP_DEFAULT, "config.json", "reward clip_score")


def _pickscore(model: str | None) -> list[str]:
    source, what = model or PICKSCORE_DEFAULT, "reward pickscore"
    problems = _folder(source, "config.json", what)
    if not problems and is_local(source) and not has_tokenizer(source):  # falls back to the base CLIP's tokenizer
        problems = _folder(PICKSCORE_PROCESSOR, "tokenizer_config.json", f"{what} (tokenizer, none in {source!r})")
    return problems


def _hps(model: str | None) -> list[str]:
    what = "reward hps"
    missing = missing_package("open_clip", "open_clip_torch", what)
    return ([missing] if missing else []) + _checkpoint(model or HPS_DEFAULT, HPS_FILE, what)


def _image_reward(model: str | None) -> list[str]:
    what = "reward image_reward"
    return (_checkpoint(model or IMAGE_REWARD_DEFAULT, IMAGE_REWARD_FILE, what)
            + _folder(BERT_TOKENIZER, "vocab.txt", f"{what} (tokenizer)"))


@dataclass(frozen=True)
class ModelReward:
    """A reward backed by downloaded weights: the module that registers it, whether it is held out
    (evaluation only in the paper), and a check of what would stop `model` (None: default) loading."""

    module: str
    held_out: bool
    problems: Callable[[str | None], list[str]]


MODEL_REWARDS: dict[str, ModelReward] = {
    "clip_score": ModelReward("engine.rewards.clip_family", False, _clip_score),
    "hps": ModelReward("engine.rewards.clip_family", False, _hps),
    "pickscore": ModelReward("engine.rewards.clip_family", True, _pickscore),
    "image_reward": ModelReward("engine.rewards.image_reward", True, _image_reward),
}
