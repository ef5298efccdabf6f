"""GRPO objective math, written once: group advantages, their integration, the clipped loss, KL."""
from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, global_std: torch.Tensor | None = None) -> torch.Tensor:
    """z-score over the last dim (the group): (r - mean) / (std + 1e-8), unbiased std.

    Computed in float64. A group whose rewards are all equal gets exactly zero advantage, not the
    rounding noise of (r - mean) amplified by 1 / 1e-8. `global_std` replaces the per-group std
    (Flow-GRPO's option).
    """
    r = rewards.double()
    centred = r - r.mean(-1, keepdim=True)
    std = r.std(-1, keepdim=True) if global_std is None else global_std.double()
    adv = centred / (std + 1e-8)
    all_equal = (r.amax(-1, keepdim=True) == r.amin(-1, keepdim=True))
    return torch.where(all_equal, torch.zeros_like(adv), adv).float()


def integrate_advantages(per_reward: torch.Tensor, weights: torch.Tensor, clamp: float) -> torch.Tensor:
    """Mix advantages [M rewards, L granularities, ..., G] into one per member: [..., G].

    A = clamp(sum_lambda sum_m w_m A_{lambda, m}, -clamp, clamp): a plain (weighted) sum, clamped
    after summing, as in the paper. L = 1 covers single-granularity algorithms.
    """
    w = weights.to(per_reward).reshape((-1,) + (1,) * (per_reward.ndim - 1))
    return (per_reward * w).sum(dim=(0, 1)).clamp(-clamp, clamp)


def clipped_policy_loss(ratio: torch.Tensor, advantage: torch.Tensor, clip_range: float) -> torch.Tensor:
    """Per-sample PPO loss max(-A r, -A clip(r, 1 - eps, 1 + eps)): shape of ratio."""
    unclipped = -advantage * ratio
    clipped = -advantage * ratio.clamp(1 - clip_range, 1 + clip_range)
    return torch.maximum(unclipped, clipped)


def gaussian_kl(mean: torch.Tensor, ref_mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL between N(mean, std^2) and N(ref_mean, std^2), element mean per sample: [B].

    This is Flow-GRPO's beta-term ||mu_theta - mu_ref||^2 / (2 sigma^2) on the same per-element
    scale as the log-probabilities. `std` broadcasts against mean (as `sde_std` returns it).
    """
    return ((mean - ref_mean) ** 2 / (2 * std**2)).flatten(1).mean(1)


# ---------------------------------------------------------------- DiffusionNFT (forward-process RL)


def optimality_probability(advantage: torch.Tensor, clamp: float) -> torch.Tensor:
    """DiffusionNFT's r in [0, 1] from a group advantage: clamp(A, -c, c) / (2c) + 1/2.

    r = 1/2 (an average member) weighs the positive and the negative policy alike."""
    return (advantage.clamp(-clamp, clamp) / clamp / 2 + 0.5).clamp(0, 1)


def nft_loss(v: torch.Tensor, v_old: torch.Tensor, x_t: torch.Tensor, x0: torch.Tensor, s: torch.Tensor,
             r: torch.Tensor, beta: float, clamp: float) -> torch.Tensor:
    """DiffusionNFT's negative-aware flow-matching loss per sample: shape [B].

    The implicit positive policy v+ = beta v + (1 - beta) v_old and its mirror image about the old
    policy, the negative v- = (1 + beta) v_old - beta v, both regress the clean sample x0 through
    x0_hat = x_t - s v (the flow-matching target), weighted r and 1 - r:
        loss = (r ||x0_hat(v+) - x0||^2 / w+ + (1 - r) ||x0_hat(v-) - x0||^2 / w-) * clamp / beta
    with the authors' adaptive weights w = mean |x0_hat - x0| (no gradient). A high-reward sample
    pulls v towards it, a low-reward one pushes v away; with v = v_old both policies equal the old
    one, and with every r = 1/2 the two gradients cancel exactly.
    """
    s = s.reshape(-1, *[1] * (x0.ndim - 1))
    v_old = v_old.detach()
    positive = x_t - s * (beta * v + (1 - beta) * v_old) - x0
    negative = x_t - s * ((1 + beta) * v_old - beta * v) - x0

    def weighted(err: torch.Tensor) -> torch.Tensor:
        w = err.detach().abs().flatten(1).mean(1).clamp(min=1e-5)
        return (err**2).flatten(1).mean(1) / w

    return (r * weighted(positive) + (1 - r) * weighted(negative)) * clamp / beta
