"""What every algorithm provides: a batched rollout, and advantages from the rollout's rewards."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import torch

from engine.config import Config
from engine.models.base import Cond, VelocityRunner
from engine.method.objective import group_advantages, integrate_advantages, optimality_probability
from engine.method.rollout import ForwardSamples, RolloutNoise, Transition
from engine.method.sampling import noise_levels, sigma_grid


Gather = Callable[[torch.Tensor], torch.Tensor]


def local(t: torch.Tensor) -> torch.Tensor:
    """The gather of a single process: its own batch is the global batch."""
    return t


@dataclass
class Rollout:
    """Images to score, and the transitions to train on once advantages are known.

    `groups` gives the shape the flat image batch reshapes to for advantages, always ending in
    (..., G); for G²RPO it is (|Lambda|, |K|, P, G), for the baselines (1, P, G).
    Policy-gradient methods train on `transitions`; a forward-process method (DiffusionNFT) on
    `forward` instead: the clean latents and where the forward process noises them.
    """

    images: torch.Tensor
    prompt_idx: torch.Tensor
    groups: tuple[int, ...]
    transitions: list[Transition]
    info: dict = field(default_factory=dict)
    forward: ForwardSamples | None = None


class Algorithm(ABC):
    def __init__(self, cfg: Config):
        self.cfg, a = cfg, cfg.algorithm
        self.group = a.group_size
        self.grid = sigma_grid(cfg.sampling.steps, cfg.sampling.shift).float()
        self.sigmas = noise_levels(sigma_grid(cfg.sampling.steps, cfg.sampling.shift), a.eta, a.noise_form).float()
        self.steps = cfg.sampling.steps

    @abstractmethod
    def rollout(self, runner: VelocityRunner, cond: Cond, noise: RolloutNoise, iteration: int) -> Rollout:
        """Sample noise.prompts groups (cond holds one row per prompt), one batched model call per wave."""

    def advantages(self, rollout: Rollout, rewards: torch.Tensor, weights: torch.Tensor,
                   gather: Gather = local) -> dict:
        """Fill every transition's advantage from rewards [M, images]; return extra records.

        `gather` concatenates a tensor along dim 0 over all processes (the global batch): anything
        computed across groups must see every process's groups. The baselines' default: one
        terminal reward per trajectory, z-scored within each prompt's group (or by the global
        batch's std), summed over reward models, clamped, broadcast to every trained step.
        """
        per_reward = rewards.reshape(len(rewards), *rollout.groups)  # [M, 1, P, G]
        global_std = None
        if self.cfg.algorithm.global_std:
            everyone = gather(rewards.double().T.contiguous())  # [all images, M]
            global_std = everyone.std(dim=0).reshape(-1, 1, 1, 1)
        adv = group_advantages(per_reward, global_std)
        mixed = integrate_advantages(adv, weights, self.cfg.algorithm.adv_clamp).reshape(-1)
        for t in rollout.transitions:
            t.advantage = mixed.to(t.x_next.device)
        if rollout.forward is not None:
            kept = mixed if self.cfg.algorithm.nft_negatives else mixed.clamp(min=0)  # r = 1/2: no push
            rollout.forward.optimality = optimality_probability(kept, self.cfg.algorithm.adv_clamp).to(rollout.forward.x0.device)
        return {}
