"""What the FLUX and SD3.5 adapters share: a stock diffusers pipeline used as a box of components.

The pipeline object is kept for its own prompt encoding, latent packing and image post-processing
(so the engine's images are the pipeline's images); the denoising loop is the engine's. Prompt
embeddings are cached on the CPU per prompt, so the text encoders can be freed once every prompt
a run needs has been encoded.
"""
from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn

from engine.models.base import Cond, FlowModel

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def frozen_dtype(name: str) -> torch.dtype:
    """The dtype of weights that are not trained: "auto" is bfloat16 on a GPU, float32 on the CPU."""
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return DTYPES[name]


class PipelineModel(FlowModel):
    """A FlowModel on a diffusers pipeline: subclasses say how to encode, call and decode."""

    default_path: str
    default_resolution: int
    default_guidance: float
    text_encoder_names: tuple[str, ...] = ("text_encoder", "text_encoder_2")

    def __init__(self, cfg, full_finetune: bool = False):
        super().__init__()
        dtype = frozen_dtype(cfg.dtype)
        self.pipe = self.pipeline_class().from_pretrained(cfg.path or self.default_path, dtype=dtype)
        self.resolution = cfg.resolution or self.default_resolution
        self.guidance = self.default_guidance if cfg.guidance is None else cfg.guidance
        self.max_sequence_length = cfg.max_sequence_length
        # Registered as submodules so `.to(device)` moves them; the pipeline holds the same objects.
        self.transformer = self.pipe.transformer
        self.vae = self.pipe.vae.requires_grad_(False)
        self.vae.enable_slicing()  # decode a group one image at a time: a 720 px batch would not fit
        self.text_encoders = nn.ModuleList(getattr(self.pipe, n).requires_grad_(False) for n in self.text_encoder_names)
        if full_finetune:  # trained weights keep float32 master copies; autocast runs the maths in bf16
            self.transformer.to(torch.float32)
        if cfg.gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()
        self._prompt_cache: dict[str, Cond] = {}

    @staticmethod
    @abstractmethod
    def pipeline_class() -> type:
        """The diffusers pipeline class (imported late: diffusers' pipelines are slow to import)."""

    # ------------------------------------------------------------------ prompts

    @abstractmethod
    def encode_one_batch(self, prompts: list[str]) -> Cond:
        """Conditioning for prompts, straight from the pipeline's encode_prompt."""

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> Cond:
        todo = [p for p in dict.fromkeys(prompts) if p not in self._prompt_cache]
        if todo and not len(self.text_encoders):
            raise ValueError(f"the text encoders were freed and {todo[0]!r} was not encoded before; "
                             "add it to the run's prompts or set model.free_text_encoders=false")
        for start in range(0, len(todo), 8):
            chunk = todo[start:start + 8]
            cond = self.encode_one_batch(chunk)
            for i, prompt in enumerate(chunk):
                self._prompt_cache[prompt] = {k: v[i:i + 1].cpu() for k, v in cond.items()}
        device = self.transformer.device
        return {k: torch.cat([self._prompt_cache[p][k] for p in prompts]).to(device)
                for k in self._prompt_cache[prompts[0]]}

    def free_text_encoders(self, prompts: list[str]) -> None:
        """Encode `prompts` once, then drop the text encoders (T5-XXL alone is 9.5 GB in bf16)."""
        self.encode_prompts(list(prompts))
        for name in self.text_encoder_names:
            setattr(self.pipe, name, None)
        self.text_encoders = nn.ModuleList()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ images

    def postprocess(self, image: torch.Tensor) -> torch.Tensor:
        """VAE output in [-1, 1] -> float [B, 3, H, W] in [0, 1], exactly as the pipeline does."""
        return self.pipe.image_processor.postprocess(image, output_type="pt").float()

    def vae_decode(self, latents: torch.Tensor) -> torch.Tensor:
        config = self.vae.config
        latents = latents / config.scaling_factor + (config.shift_factor or 0.0)
        image = self.vae.decode(latents.to(self.vae.dtype), return_dict=False)[0]
        return self.postprocess(image)
