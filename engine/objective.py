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
