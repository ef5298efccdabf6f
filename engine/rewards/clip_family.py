"""Rewards that score an image against its prompt by the cosine of CLIP-style embeddings.

Each returns the raw cosine of the normalised image and text embeddings, the scale the paper
reports (FLUX.1-dev: HPS-v2.1 0.305, CLIP 0.388, PickScore 0.226):

  clip_score  a transformers CLIPModel, DFN5B CLIP ViT-H-14 (378 px) by default
  pickscore   PickScore v1, a CLIP-H fine-tuned on Pick-a-Pic; its logit / 100 (held out in the paper)
  hps         HPS-v2.1, an open_clip ViT-H-14 fine-tuned on HPDv2 (needs open_clip_torch)
"""
from __future__ import annotations

import json
from abc import abstractmethod
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.training.hub import is_local
from engine.rewards.base import Reward, register_reward
from engine.rewards.pixels import OPENAI_MEAN, OPENAI_STD, preprocess, reward_device, reward_dtype
from engine.rewards.sources import (CLIP_DEFAULT, HPS_DEFAULT, HPS_FILE, PICKSCORE_DEFAULT, PICKSCORE_PROCESSOR,
                                    has_tokenizer, weights_file)


class EmbeddingReward(Reward):
    """cos(image embedding, prompt embedding), batched on the reward's device.

    Prompt embeddings are cached (a GRPO group shares one prompt, and training prompts repeat);
    the cache keeps the `cache_size` most recently used ones.
    """

    image_size: int = 224
    mean, std = OPENAI_MEAN, OPENAI_STD
    fit_mode = "crop"  # see pixels.fit

    def __init__(self, batch_size: int = 32, cache_size: int = 4096):
        self.device = reward_device()
        self.dtype = reward_dtype(self.device)
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._prompts: OrderedDict[str, torch.Tensor] = OrderedDict()

    @abstractmethod
    def embed_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels [B, 3, S, S] (model dtype, on the device) -> embeddings [B, D]."""

    @abstractmethod
    def embed_texts(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> embeddings [B, D] on the device."""

    def prompt_embeddings(self, prompts: list[str]) -> torch.Tensor:
        missing = [p for p in dict.fromkeys(prompts) if p not in self._prompts]
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start:start + self.batch_size]
            self._prompts.update(zip(chunk, F.normalize(self.embed_texts(chunk).float(), dim=-1)))
        for p in prompts:
            self._prompts.move_to_end(p)
        out = torch.stack([self._prompts[p] for p in prompts])
        while len(self._prompts) > self.cache_size:  # the least recently used go first
            self._prompts.popitem(last=False)
        return out

    @torch.no_grad()
    def score(self, images, prompts):
        texts = self.prompt_embeddings(prompts)
        features = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size].to(self.device)
            pixels = preprocess(chunk, self.image_size, self.mean, self.std, self.fit_mode).to(self.dtype)
            features.append(F.normalize(self.embed_images(pixels).float(), dim=-1))
        return (torch.cat(features) * texts).sum(-1).cpu()


def _image_stats(*sources: str) -> tuple[list[float], list[float]]:
    """image_mean/std from the first preprocessor_config.json among `sources`, else CLIP's."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    for source in sources:
        try:
            path = (Path(source).expanduser() / "preprocessor_config.json" if is_local(source)
                    else Path(hf_hub_download(source, "preprocessor_config.json")))
            config = json.loads(path.read_text())
        except (OSError, EntryNotFoundError):  # no such file there (or not cached while offline)
            continue
        if "image_mean" in config and "image_std" in config:
            return config["image_mean"], config["image_std"]
    return list(OPENAI_MEAN), list(OPENAI_STD)


class TransformersClip(EmbeddingReward):
    """A transformers CLIPModel from a hub id or a local folder (save_pretrained layout)."""

    def __init__(self, source: str, tokenizer_source: str | None = None, batch_size: int = 32):
        from transformers import AutoTokenizer, CLIPModel

        super().__init__(batch_size)
        tokenizer_source = tokenizer_source or source
        model = CLIPModel.from_pretrained(source, dtype=self.dtype)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
        self.image_size = model.config.vision_config.image_size
        self.max_length = min(model.config.text_config.max_position_embeddings, self.tokenizer.model_max_length)
        self.mean, self.std = _image_stats(source, tokenizer_source)

    def embed_images(self, pixels):
        # the towers directly: get_image_features changed its return type between transformers 4 and 5
        return self.model.visual_projection(self.model.vision_model(pixel_values=pixels).pooler_output)

    def embed_texts(self, prompts):
        tokens = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt").to(self.device)
        out = self.model.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        return self.model.text_projection(out.pooler_output)


@register_reward("clip_score")
class ClipScore(TransformersClip):
    """Prompt-image CLIP cosine; `model` is a CLIPModel hub id or folder (default DFN5B ViT-H-14-378)."""

    def __init__(self, model: str | None = None, batch_size: int = 32):
        super().__init__(model or CLIP_DEFAULT, batch_size=batch_size)


@register_reward("pickscore")
class PickScore(TransformersClip):
    """PickScore v1 cosine (= its published logit / 100). A local folder without a tokenizer takes
    the base model's (laion CLIP ViT-H-14), which PickScore's own code loads its processor from."""

    held_out = True

    def __init__(self, model: str | None = None, batch_size: int = 32):
        source = model or PICKSCORE_DEFAULT
        own_tokenizer = not is_local(source) or has_tokenizer(source)
        super().__init__(source, tokenizer_source=source if own_tokenizer else PICKSCORE_PROCESSOR,
                         batch_size=batch_size)


@register_reward("hps")
class HPS(EmbeddingReward):
    """HPS-v2.1: open_clip's ViT-H-14 with the HPSv2 checkpoint (`model`: a .pt file, a folder or
    hub repo holding HPS_v2.1_compressed.pt; default xswu/HPSv2). `arch` is open_clip's model name."""

    fit_mode = "pad"  # HPSv2 scores with its resize-longest-side-and-pad transform

    def __init__(self, model: str | None = None, batch_size: int = 32, arch: str = "ViT-H-14"):
        import open_clip

        super().__init__(batch_size)
        net = open_clip.create_model(arch, pretrained=None)  # the checkpoint holds every weight
        checkpoint = torch.load(weights_file(model or HPS_DEFAULT, HPS_FILE), map_location="cpu", weights_only=True)
        net.load_state_dict(checkpoint.get("state_dict", checkpoint))
        self.model = net.to(self.device, self.dtype).eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(arch)
        size = net.visual.image_size
        self.image_size = size[0] if isinstance(size, (tuple, list)) else size
        self.mean = getattr(net.visual, "image_mean", None) or OPENAI_MEAN
        self.std = getattr(net.visual, "image_std", None) or OPENAI_STD

    def embed_images(self, pixels):
        return self.model.encode_image(pixels)

    def embed_texts(self, prompts):
        return self.model.encode_text(self.tokenizer(prompts).to(self.device))
