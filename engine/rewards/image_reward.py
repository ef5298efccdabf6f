"""ImageReward (Xu et al., 2023): BLIP's text encoder reads the prompt while cross-attending to the
image, and an MLP on its [CLS] state, trained on human rankings, gives the score.

The published checkpoint (THUDM/ImageReward, ImageReward.pt) is loaded into transformers' BLIP
modules rather than through the `image-reward` package, whose latest release (1.5) cannot run in
this project: it imports helpers that transformers 5 removed (find_pruneable_heads_and_indices,
PreTrainedModel.get_head_mask), pins timm==0.6.13 (open_clip_torch 3 needs timm>=1.0.17) and
needs torchvision. The score is the package's: the MLP output standardised with its mean and std
(FLUX.1-dev scores 1.040 in the paper). Held out: the paper evaluates with it, never trains on it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from engine.rewards.base import Reward, register_reward
from engine.rewards.pixels import OPENAI_MEAN, OPENAI_STD, preprocess, reward_device
from engine.rewards.sources import BERT_TOKENIZER, IMAGE_REWARD_DEFAULT, IMAGE_REWARD_FILE, weights_file


@dataclass(frozen=True)
class Arch:
    """ImageReward-v1.0's shape: BLIP ViT-L/16 at 224 px and a BERT-base text encoder."""

    image_size: int = 224
    patch_size: int = 16
    vision_width: int = 1024
    vision_layers: int = 24
    vision_heads: int = 16
    text_width: int = 768
    text_layers: int = 12
    text_heads: int = 12
    vocab_size: int = 30524  # bert-base-uncased plus BLIP's [DEC] and [ENC] tokens
    max_positions: int = 512
    max_length: int = 35  # the package pads and truncates every prompt to 35 tokens
    mean: float = 0.16717362830052426  # the package's standardisation of the MLP output
    std: float = 1.0333394966054072


class ImageRewardNet(nn.Module):
    """(normalised pixels, prompt tokens) -> the raw (unstandardised) reward."""

    def __init__(self, arch: Arch):
        from transformers import BlipTextConfig, BlipVisionConfig
        from transformers.models.blip.modeling_blip import BlipVisionModel
        from transformers.models.blip.modeling_blip_text import BlipTextModel

        super().__init__()
        self.vision = BlipVisionModel(BlipVisionConfig(
            hidden_size=arch.vision_width, intermediate_size=4 * arch.vision_width,
            num_hidden_layers=arch.vision_layers, num_attention_heads=arch.vision_heads,
            image_size=arch.image_size, patch_size=arch.patch_size,
            hidden_act="gelu", layer_norm_eps=1e-6))  # BLIP's timm ViT: exact GELU, LayerNorm eps 1e-6
        # is_decoder=True gives every layer its cross-attention; forward still attends both ways
        self.text = BlipTextModel(BlipTextConfig(
            vocab_size=arch.vocab_size, hidden_size=arch.text_width, intermediate_size=4 * arch.text_width,
            num_hidden_layers=arch.text_layers, num_attention_heads=arch.text_heads,
            max_position_embeddings=arch.max_positions, encoder_hidden_size=arch.vision_width,
            hidden_act="gelu", layer_norm_eps=1e-12, is_decoder=True), add_pooling_layer=False)
        self.mlp = nn.Sequential(  # the package's MLP (its dropouts are inactive in eval)
            nn.Linear(arch.text_width, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))

    def forward(self, pixels, input_ids, attention_mask):
        image = self.vision(pixel_values=pixels).last_hidden_state
        image_mask = torch.ones(image.shape[:2], dtype=torch.long, device=image.device)
        # is_decoder=False: the prompt attends to itself both ways, as in BLIP's "multimodal" mode
        text = self.text(input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=image,
                         encoder_attention_mask=image_mask, is_decoder=False).last_hidden_state
        return self.mlp(text[:, 0].float()).squeeze(-1)


# The package's parameter names (BLIP's timm ViT and its own BERT) -> ImageRewardNet's.
_RENAMES = [
    (r"^blip\.visual_encoder\.cls_token$", "vision.embeddings.class_embedding"),
    (r"^blip\.visual_encoder\.pos_embed$", "vision.embeddings.position_embedding"),
    (r"^blip\.visual_encoder\.patch_embed\.proj\.", "vision.embeddings.patch_embedding."),
    (r"^blip\.visual_encoder\.blocks\.(\d+)\.norm1\.", r"vision.encoder.layers.\1.layer_norm1."),
    (r"^blip\.visual_encoder\.blocks\.(\d+)\.norm2\.", r"vision.encoder.layers.\1.layer_norm2."),
    (r"^blip\.visual_encoder\.blocks\.(\d+)\.attn\.qkv\.", r"vision.encoder.layers.\1.self_attn.qkv."),
    (r"^blip\.visual_encoder\.blocks\.(\d+)\.attn\.proj\.", r"vision.encoder.layers.\1.self_attn.projection."),
    (r"^blip\.visual_encoder\.blocks\.(\d+)\.mlp\.", r"vision.encoder.layers.\1.mlp."),
    (r"^blip\.visual_encoder\.norm\.", "vision.post_layernorm."),
    (r"^blip\.text_encoder\.", "text."),  # transformers' BLIP text model keeps BLIP's BERT names
    (r"^mlp\.layers\.", "mlp."),
]
_USED = re.compile(r"^(blip\.visual_encoder|blip\.text_encoder|mlp)\.")  # not BLIP's contrastive projections


def convert_checkpoint(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if not _USED.match(key) or key.endswith("position_ids"):  # position_ids: a buffer, rebuilt
            continue
        for pattern, replacement in _RENAMES:
            new, hits = re.subn(pattern, replacement, key)
            if hits:
                out[new] = value
                break
        else:
            raise KeyError(f"ImageReward checkpoint: unexpected parameter {key!r}")
    return out


def load_image_reward(path: str, arch: Arch = Arch()) -> ImageRewardNet:
    net = ImageRewardNet(arch)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(convert_checkpoint(state.get("state_dict", state)), strict=True)  # every weight, or fail
    return net.eval().requires_grad_(False)


@register_reward("image_reward")
class ImageReward(Reward):
    """ImageReward-v1.0 on its published (standardised) scale. `model`: ImageReward.pt, a folder or a
    hub repo holding it (default THUDM/ImageReward); `tokenizer`: bert-base-uncased (hub id or folder)."""

    held_out = True

    def __init__(self, model: str | None = None, batch_size: int = 16, tokenizer: str = BERT_TOKENIZER,
                 arch: Arch = Arch()):
        from transformers import AutoTokenizer

        self.device = reward_device()
        self.arch, self.batch_size = arch, batch_size
        # fp32 on every device: the package scores in fp32, and the BERT's LayerNorm eps (1e-12) vanishes in fp16
        path = weights_file(model or IMAGE_REWARD_DEFAULT, IMAGE_REWARD_FILE)
        self.net = load_image_reward(path, arch).to(self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer)

    @torch.no_grad()
    def score(self, images, prompts):
        scores = []
        for start in range(0, len(images), self.batch_size):
            stop = start + self.batch_size
            pixels = preprocess(images[start:stop].to(self.device), self.arch.image_size, OPENAI_MEAN, OPENAI_STD)
            tokens = self.tokenizer(prompts[start:stop], padding="max_length", truncation=True,
                                    max_length=self.arch.max_length, return_tensors="pt").to(self.device)
            raw = self.net(pixels, tokens["input_ids"], tokens["attention_mask"])
            scores.append((raw - self.arch.mean) / self.arch.std)
        return torch.cat(scores).cpu()
