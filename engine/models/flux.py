"""FLUX.1-dev and FLUX.1-schnell through diffusers' FluxPipeline components.

Latents are the pipeline's packed 2x2 patches of the VAE latent ([tokens, 64] for 16 channels),
with its image ids; the prompt is CLIP-L pooled + T5-XXL tokens; FLUX.1-dev takes its distilled
guidance (3.5) as an input, FLUX.1-schnell has none. The transformer scales time by 1000 itself,
so the engine's s in [0, 1] goes in unchanged.
"""
from __future__ import annotations

import torch

from engine.models import PIPELINE_DEFAULTS
from engine.models.base import Cond
from engine.models.pipeline_model import PipelineModel


class Flux(PipelineModel):
    default_path = PIPELINE_DEFAULTS["flux"]["path"]
    default_resolution = PIPELINE_DEFAULTS["flux"]["resolution"]
    default_guidance = PIPELINE_DEFAULTS["flux"]["guidance"]
    lora_loader = "FluxLoraLoaderMixin"

    @staticmethod
    def pipeline_class():
        from diffusers import FluxPipeline

        return FluxPipeline

    def __init__(self, cfg, full_finetune: bool = False):
        super().__init__(cfg, full_finetune)
        pipe = self.pipe
        # The pipeline's latent grid: the VAE downsamples by vae_scale_factor, packing by 2 more.
        self.latent_side = 2 * (self.resolution // (pipe.vae_scale_factor * 2))
        self.channels = self.transformer.config.in_channels // 4
        ids = pipe._prepare_latent_image_ids(1, self.latent_side // 2, self.latent_side // 2, "cpu", torch.float32)
        self.register_buffer("img_ids", ids, persistent=False)
        self.has_guidance = bool(self.transformer.config.guidance_embeds)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return ((self.latent_side // 2) ** 2, self.channels * 4)

    def encode_one_batch(self, prompts: list[str]) -> Cond:
        embeds, pooled, _ = self.pipe.encode_prompt(prompts, prompt_2=None, device=self.transformer.device,
                                                    max_sequence_length=self.max_sequence_length)
        return {"prompt_embeds": embeds, "pooled": pooled}

    def velocity(self, x: torch.Tensor, s: torch.Tensor, cond: Cond) -> torch.Tensor:
        dtype = self.transformer.dtype
        guidance = torch.full_like(s, self.guidance, dtype=torch.float32) if self.has_guidance else None
        txt_ids = torch.zeros(cond["prompt_embeds"].shape[1], 3, device=x.device, dtype=dtype)
        return self.call_transformer(
            hidden_states=x.to(dtype), timestep=s.to(dtype), guidance=guidance,
            pooled_projections=cond["pooled"].to(dtype), encoder_hidden_states=cond["prompt_embeds"].to(dtype),
            txt_ids=txt_ids, img_ids=self.img_ids.to(dtype), return_dict=False,
        )[0]

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        side = self.latent_side * self.pipe.vae_scale_factor
        return self.vae_decode(self.pipe._unpack_latents(x, side, side, self.pipe.vae_scale_factor))
