"""The model interface the engine talks to. A new model (FLUX, SD3.5, the built-in one) is one adapter.

An adapter knows how to encode prompts, predict a velocity for a batch of latents at per-sample
times, decode latents to images, and which module gets LoRA. Everything else (sampling,
advantages, losses, the trainer) is model-agnostic.
"""
from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from typing import Callable, ContextManager

import torch
from torch import nn

Cond = dict[str, torch.Tensor]  # prompt conditioning: every tensor has the prompt batch first


def take(cond: Cond, index: torch.Tensor) -> Cond:
    """Rows `index` of every conditioning tensor (one row per sample of a model call)."""
    return {k: v[index.to(v.device)] for k, v in cond.items()}


class FlowModel(ABC, nn.Module):
    """A text-to-image flow model: v = velocity(x, s, cond) with x_s = (1 - s) x0 + s eps."""

    #: the module LoRA is added to and whose weights are trained
    transformer: nn.Module
    #: default LoRA target module names inside `transformer`
    lora_target_modules: list[str] = ["to_q", "to_k", "to_v", "to_out.0"]
    #: diffusers' LoRA loader mixin whose format the adapter exports (`save_lora_weights`)
    lora_loader: str = "FluxLoraLoaderMixin"
    #: transformer evaluations per sample of a velocity call (2 under classifier-free guidance)
    evaluations_per_sample: int = 1

    def use_wrapped_transformer(self, wrapped: nn.Module) -> None:
        """Route calls through a data-parallel wrapper (kept out of the module tree on purpose)."""
        object.__setattr__(self, "_wrapped_transformer", wrapped)

    def call_transformer(self, **kwargs):
        return self.__dict__.get("_wrapped_transformer", self.transformer)(**kwargs)

    @property
    @abstractmethod
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one latent, without the batch dim."""

    @abstractmethod
    def encode_prompts(self, prompts: list[str]) -> Cond:
        """Prompt conditioning, computed once per prompt batch and cached by the caller."""

    @abstractmethod
    def velocity(self, x: torch.Tensor, s: torch.Tensor, cond: Cond) -> torch.Tensor:
        """Velocity for latents x [B, ...] at per-sample times s [B], cond rows aligned with x."""

    @abstractmethod
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Images float [B, 3, H, W] in [0, 1] from final latents."""

    def validate_prompts(self, prompts: list[str]) -> None:
        """Raise ValueError for prompts the model cannot encode (checked before any job starts)."""


class VelocityRunner:
    """Calls a model's velocity in micro-batches, counting evaluations and time in model calls.

    Rollouts and training both go through `__call__`, so the same batch is split the same way
    in both: that is what makes the on-policy ratio exactly 1.
    """

    def __init__(self, model: FlowModel, micro_batch: int, autocast: Callable[[], ContextManager] | None = None):
        self.model, self.micro_batch = model, micro_batch
        self.autocast = autocast or contextlib.nullcontext
        self.evaluations = 0
        self.seconds = 0.0
        self.before_call: Callable[[], None] | None = None  # the trainer's stop check (engine/training/stopping.py)

    def reset_counters(self) -> None:
        self.evaluations, self.seconds = 0, 0.0

    def chunks(self, n: int) -> list[slice]:
        return [slice(i, min(i + self.micro_batch, n)) for i in range(0, n, self.micro_batch)]

    def one_chunk(self, x, s, cond: Cond, cond_idx) -> torch.Tensor:
        """One model call on rows already chunked (training calls this to backprop per chunk)."""
        start = time.perf_counter()
        with self.autocast():
            v = self.model.velocity(x, s.to(x), take(cond, cond_idx))
        if v.is_cuda:  # time the work, not the kernel launches
            torch.cuda.synchronize(v.device)
        self.seconds += time.perf_counter() - start
        self.evaluations += x.shape[0] * self.model.evaluations_per_sample
        return v.float()

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, s: torch.Tensor, cond: Cond, cond_idx: torch.Tensor) -> torch.Tensor:
        """Velocities for all rows (no grad), as float32."""
        if self.before_call is not None:
            self.before_call()
        s = torch.as_tensor(s, dtype=x.dtype, device=x.device).expand(x.shape[0])
        return torch.cat([self.one_chunk(x[c], s[c], cond, cond_idx[c]) for c in self.chunks(x.shape[0])])
