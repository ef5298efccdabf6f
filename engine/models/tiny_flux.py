"""A small text-to-image flow model in pixel space on diffusers' FluxTransformer2DModel.

Images are RGB in [-1, 1], packed 2x2 into tokens of 12 channels (the same packing FLUX uses on
its latents), so the velocity call, image ids and LoRA targets are FLUX's own code path. The text
encoder is a word-embedding table over a fixed vocabulary: an unknown word is an error, never a guess.
"""
from __future__ import annotations

import torch
from diffusers import FluxTransformer2DModel
from torch import nn

from engine.models.base import Cond, FlowModel
from engine.models.spec import TinyFluxSpec, check_prompt, tokenize  # noqa: F401 (re-exported)


class WordEncoder(nn.Module):
    """Prompt -> (per-word embeddings [max_words, dim], pooled mean embedding [dim])."""

    def __init__(self, vocabulary: list[str], dim: int, max_words: int):
        super().__init__()
        self.vocabulary, self.max_words = list(vocabulary), max_words
        self.index = {w: i + 1 for i, w in enumerate(self.vocabulary)}  # 0 is padding
        self.embed = nn.Embedding(len(self.vocabulary) + 1, dim, padding_idx=0)

    def check(self, prompt: str) -> list[int]:
        return [self.index[w] for w in check_prompt(prompt, self.vocabulary, self.max_words)]

    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.zeros(len(prompts), self.max_words, dtype=torch.long, device=self.embed.weight.device)
        for row, prompt in enumerate(prompts):
            tokens = self.check(prompt)
            ids[row, : len(tokens)] = torch.tensor(tokens)
        emb = self.embed(ids)
        mask = (ids > 0).unsqueeze(-1).to(emb)
        return emb, (emb * mask).sum(1) / mask.sum(1)


class TinyFlux(FlowModel):
    def __init__(self, spec: TinyFluxSpec | None = None):
        super().__init__()
        self.spec = spec = spec or TinyFluxSpec()
        if spec.resolution % spec.patch:
            raise ValueError("resolution must be a multiple of patch")
        self.grid = spec.resolution // spec.patch
        channels = 3 * spec.patch**2
        rope = spec.head_dim // 4 * 2  # split head_dim over FLUX's 3 rope axes, each even
        self.transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=channels, num_layers=spec.num_layers,
            num_single_layers=spec.num_single_layers, attention_head_dim=spec.head_dim,
            num_attention_heads=spec.num_heads, joint_attention_dim=spec.text_dim,
            pooled_projection_dim=spec.text_dim, guidance_embeds=False,
            axes_dims_rope=(spec.head_dim - 2 * rope, rope, rope),
        )
        self.text_encoder = WordEncoder(spec.vocabulary, spec.text_dim, spec.max_words)
        self.text_encoder.requires_grad_(False)
        rows, cols = torch.meshgrid(torch.arange(self.grid), torch.arange(self.grid), indexing="ij")
        self.register_buffer("img_ids", torch.stack([torch.zeros_like(rows), rows, cols], -1).reshape(-1, 3).float(), persistent=False)
        self.register_buffer("txt_ids", torch.zeros(spec.max_words, 3), persistent=False)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.grid * self.grid, 3 * self.spec.patch**2)

    def validate_prompts(self, prompts: list[str]) -> None:
        for prompt in prompts:
            self.text_encoder.check(prompt)

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> Cond:
        words, pooled = self.text_encoder(prompts)
        return {"words": words, "pooled": pooled}

    def velocity(self, x: torch.Tensor, s: torch.Tensor, cond: Cond) -> torch.Tensor:
        dtype = self.transformer.dtype
        return self.call_transformer(
            hidden_states=x.to(dtype), encoder_hidden_states=cond["words"].to(dtype),
            pooled_projections=cond["pooled"].to(dtype), timestep=s.to(dtype),
            img_ids=self.img_ids, txt_ids=self.txt_ids, return_dict=False,
        )[0]

    def pack(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in [0, 1] -> latents [B, tokens, 3 p^2] in [-1, 1]."""
        b, p, g = images.shape[0], self.spec.patch, self.grid
        x = images * 2 - 1
        return x.reshape(b, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, 3 * p * p)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        b, p, g = x.shape[0], self.spec.patch, self.grid
        images = x.float().reshape(b, g, g, 3, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, 3, g * p, g * p)
        return ((images + 1) / 2).clamp(0, 1)
