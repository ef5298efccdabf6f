"""The baselines: DanceGRPO, Flow-GRPO and MixGRPO. Each is a choice of which steps are
stochastic, which are trained, and how the members' noise is shared; the sampling, advantages and
loss are the shared ones. The last step (to s = 0) is never trained, so every baseline takes it by
ODE: noise injected there would only blur the images the rewards score.
"""
from __future__ import annotations

import torch

from engine.algorithms.base import Algorithm, Rollout
from engine.method.rollout import sample_trajectories


class SdeTrajectoryAlgorithm(Algorithm):
    def stochastic_steps(self, iteration: int) -> list[bool]:
        """Which of the T steps are SDE steps."""
        return [j < self.steps - 1 for j in range(self.steps)]

    def trained_steps(self, sde_steps: list[int], iteration: int, generator: torch.Generator) -> list[int]:
        """Which SDE steps to train; `generator` is the same on every process, so all train alike."""
        return sde_steps

    def rollout(self, runner, cond, noise, iteration):
        device, prompts = cond[next(iter(cond))].device, noise.prompts
        stochastic = self.stochastic_steps(iteration)
        x, transitions = sample_trajectories(runner, cond, self.group, self.grid, self.sigmas, stochastic,
                                             self.cfg.algorithm.shared_noise, noise, device)
        trained = set(self.trained_steps([t.step for t in transitions], iteration, noise.shared))
        prompt_idx = torch.arange(prompts, device=device).repeat_interleave(self.group)
        return Rollout(runner.model.decode(x), prompt_idx, (1, prompts, self.group),
                       [t for t in transitions if t.step in trained], info={"trained_steps": sorted(trained)})


class DanceGRPO(SdeTrajectoryAlgorithm):
    """Every step stochastic (constant-eta noise); trains a random share of the steps, never the last."""

    def trained_steps(self, sde_steps, iteration, generator):
        count = max(1, round(self.cfg.algorithm.train_fraction * len(sde_steps)))
        order = torch.randperm(len(sde_steps), generator=generator)[:count]
        return [sde_steps[i] for i in sorted(order.tolist())]


class FlowGRPO(SdeTrajectoryAlgorithm):
    """Every step stochastic; trains all of them (all but the last, which is ODE)."""


class MixGRPO(SdeTrajectoryAlgorithm):
    """SDE only inside a sliding window of steps, ODE elsewhere; trains the window.

    The window starts at step 0 and moves by one every `window_shift_every` iterations, wrapping
    around before it would reach the last step.
    """

    def window(self, iteration: int) -> range:
        a = self.cfg.algorithm
        positions = self.steps - a.window_size  # windows [p, p + w) with p + w <= T - 1
        start = (iteration // a.window_shift_every) % positions
        return range(start, start + a.window_size)

    def stochastic_steps(self, iteration):
        window = self.window(iteration)
        return [j in window for j in range(self.steps)]
