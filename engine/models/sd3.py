"""Stable Diffusion 3.5 (Medium, Large) through diffusers' StableDiffusion3Pipeline components.

Latents are the VAE's [16, H/8, W/8] (the transformer patchifies them itself); the prompt is
CLIP-L and CLIP-G (pooled and per-token) with T5-XXL tokens. The transformer takes time in
[0, 1000]. Classifier-free guidance is a setting (model.guidance, 4.5 as Flow-GRPO; 1 turns it
off): as in Flow-GRPO, the guided velocity v_u + w (v_c - v_u) is the policy's mean, both branches
run with gradients, so one sample costs two transformer evaluations.
"""
from __future__ import annotations

import torch

from engine.models import PIPELINE_DEFAULTS
from engine.models.base import Cond
from engine.models.pipeline_model import PipelineModel


class SD3(PipelineModel):
    default_path = PIPELINE_DEFAULTS["sd3"]["path"]
    default_resolution = PIPELINE_DEFAULTS["sd3"]["resolution"]
    default_guidance = PIPELINE_DEFAULTS["sd3"]["guidance"]
    lora_loader = "SD3LoraLoaderMixin"
    text_encoder_names = ("text_encoder", "text_encoder_2", "text_encoder_3")

    @staticmethod
    def pipeline_class():
        from diffusers import StableDiffusion3Pipeline

        return StableDiffusion3Pipeline

    def __init__(self, cfg, full_finetune: bool = False):
        super().__init__(cfg, full_finetune)
        self.latent_side = self.resolution // self.pipe.vae_scale_factor
        self.cfg_guided = self.guidance > 1.0
        self.evaluations_per_sample = 2 if self.cfg_guided else 1

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.transformer.config.in_channels, self.latent_side, self.latent_side)

    def encode_one_batch(self, prompts: list[str]) -> Cond:
        embeds, negative, pooled, negative_pooled = self.pipe.encode_prompt(
            prompts, prompt_2=None, prompt_3=None, device=self.transformer.device,
            do_classifier_free_guidance=self.cfg_guided, max_sequence_length=self.max_sequence_length)
        cond = {"prompt_embeds": embeds, "pooled": pooled}
        if self.cfg_guided:  # the empty prompt's embedding, one row per prompt so rows stay aligned
            cond.update(negative_embeds=negative, negative_pooled=negative_pooled)
        return cond

    def velocity(self, x: torch.Tensor, s: torch.Tensor, cond: Cond) -> torch.Tensor:
        dtype = self.transformer.dtype
        embeds, pooled = cond["prompt_embeds"], cond["pooled"]
        if self.cfg_guided:  # unconditional rows first, as the pipeline batches them
            x = torch.cat([x, x])
            s = torch.cat([s, s])
            embeds = torch.cat([cond["negative_embeds"], embeds])
            pooled = torch.cat([cond["negative_pooled"], pooled])
        v = self.call_transformer(hidden_states=x.to(dtype), timestep=s.float() * 1000,
                                  encoder_hidden_states=embeds.to(dtype), pooled_projections=pooled.to(dtype),
                                  return_dict=False)[0]
        if self.cfg_guided:
            v_uncond, v_cond = v.chunk(2)
            v = v_uncond + self.guidance * (v_cond - v_uncond)
        return v

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae_decode(x)
