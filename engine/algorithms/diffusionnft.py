"""DiffusionNFT (Zheng et al. 2025, "negative-aware fine-tuning"): online RL on the forward process.

Each member of a group is sampled from its own initial noise by the deterministic ODE (any sampler
would do: no likelihoods are needed), scored, and given an optimality probability r from its group
advantage. The update is flow matching on the clean samples, noised again at a few grid times, with
the loss `engine.method.objective.nft_loss`: high-r samples pull the velocity towards them, low-r samples
push it away, both measured against the rollout ("old") policy.

Where this differs from the authors' code: they keep the old policy as a slowly updated copy of the
trained one and train every image at every sampling time; here the old policy is the rollout's own
(the policy at the start of the iteration) and each image is trained at `algorithm.nft_times` times
drawn from the sampling grid, so that an iteration costs about two rollouts on a CPU; with
`algorithm.nft_group_noise` the members of a group are noised alike (the authors draw per sample); and
with `algorithm.nft_noise: rollout` each sample is noised again with its own initial noise (the
authors draw fresh noise).
"""
from __future__ import annotations

import torch

from engine.algorithms.base import Algorithm, Rollout
from engine.method.rollout import ForwardSamples, sample_trajectories


class DiffusionNFT(Algorithm):
    def rollout(self, runner, cond, noise, iteration):
        device, prompts, G, T = cond[next(iter(cond))].device, noise.prompts, self.group, self.steps
        start = noise.randn(G, *runner.model.latent_shape).flatten(0, 1)  # one initial noise per member
        x0, _ = sample_trajectories(runner, cond, G, self.grid, self.sigmas, [False] * T, False, noise, device, start)
        # Where the forward process noises each clean sample, drawn from each group's own stream. With
        # `nft_group_noise` a group's members share their times and noise (common random numbers): the
        # advantages sum to zero over a group, so what the shared noise does to every member's loss alike
        # cancels from the gradient, and what is left is the difference between good and bad samples.
        n, shape = self.cfg.algorithm.nft_times, runner.model.latent_shape
        draws = 1 if self.cfg.algorithm.nft_group_noise else G
        first = max(1, round(self.cfg.algorithm.nft_time_fraction * T))  # grid steps from the noisy end
        time_idx = torch.stack([torch.randint(first, (draws, n), generator=g) for g in noise.groups])
        eps = noise.randn(draws, n, *shape)
        time_idx, eps = time_idx.expand(prompts, G, n).flatten(0, 1), eps.expand(prompts, G, n, *shape).flatten(0, 1)
        if self.cfg.algorithm.nft_noise == "rollout":  # noised again with the noise it was drawn from
            eps = start[:, None].expand_as(eps)
        prompt_idx = torch.arange(prompts, device=device).repeat_interleave(G)
        return Rollout(runner.model.decode(x0), prompt_idx, (1, prompts, G), [],
                       forward=ForwardSamples(x0, time_idx.to(device), eps.to(device)))
