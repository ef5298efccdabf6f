"""A learned reward model for the shapes world: it plays the role HPS plays in the paper.

A small CNN scores how well an image matches its caption, trained by
`python -m engine.rewards.train_preference` on clean renders of the training prompts (matching
captions against captions with one attribute changed). It is a smooth score of the kind RL can
over-optimise: compare it with the exact verifiers to see reward hacking.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from engine.rewards.base import Reward, register_reward

WEIGHTS = Path(__file__).parent / "weights" / "preference.safetensors"


class PreferenceNet(nn.Module):
    """(image [B, 3, 32, 32] in [0, 1], caption) -> match logit [B]."""

    def __init__(self, vocabulary: list[str], dim: int = 64):
        super().__init__()
        self.index = {w: i + 1 for i, w in enumerate(vocabulary)}
        self.image = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.GELU(),
            nn.Conv2d(32, 48, 3, stride=2, padding=1), nn.GELU(),  # 16x16
            nn.Conv2d(48, 64, 3, stride=2, padding=1), nn.GELU(),  # 8x8
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.GELU(),  # 4x4
            nn.Flatten(), nn.Linear(64 * 16, 2 * dim),
        )
        self.words = nn.EmbeddingBag(len(vocabulary) + 1, 2 * dim, mode="mean", padding_idx=0)
        self.head = nn.Sequential(nn.GELU(), nn.Linear(6 * dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, 1))

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        tokens = [[self.index[w] for w in p.lower().rstrip(".").split()] for p in prompts]
        width = max(len(t) for t in tokens)
        ids = torch.tensor([t + [0] * (width - len(t)) for t in tokens], device=self.words.weight.device)
        return self.words(ids)

    def forward(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        img, txt = self.image(images * 2 - 1), self.encode_text(prompts)
        return self.head(torch.cat([img, txt, img * txt], dim=1)).squeeze(1)


def load_preference_net(path: Path = WEIGHTS) -> PreferenceNet:
    from engine.world import VOCABULARY

    if not Path(path).exists():
        raise FileNotFoundError(f"no weights at {path}; train them with `python -m engine.rewards.train_preference`")
    net = PreferenceNet(list(VOCABULARY))
    net.load_state_dict(load_file(path))
    return net.eval().requires_grad_(False)


@register_reward("preference")
class Preference(Reward):
    """The learned match probability in [0, 1] (a training reward, like HPS)."""

    def __init__(self):
        self.net = load_preference_net()

    @torch.no_grad()
    def score(self, images, prompts):
        if images.shape[-1] != 32:  # the net was trained at 32x32
            images = nn.functional.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
        return torch.sigmoid(self.net(images, prompts))
