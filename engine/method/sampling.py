"""Flow-matching sampling math, written once and shared by every algorithm.

Conventions (see the spec): x_s = (1 - s) x0 + s eps, s = 1 is pure noise, the model predicts the
velocity v = eps - x0. Grid index i runs 0..T; step i goes from s_i to s_{i+1}, with Delta_i > 0.

Log-probabilities are the MEAN over latent elements of the Gaussian log-density (as in the
reference code), so policy ratios stay within about 1e-4 of 1 and the clip range is 1e-4.
"""
from __future__ import annotations

import math
from typing import Literal

import torch

from engine.method.schedule import CompletionEnd, completion_schedule  # noqa: F401 (re-exported: torch-free)

NoiseForm = Literal["flow", "dance"]  # sigma = eta*sqrt(s/(1-s))  |  DanceGRPO's constant eta


def sigma_grid(steps: int, shift: float) -> torch.Tensor:
    """The shifted time grid s_0 = 1 > s_1 > ... > s_T = 0 (float64, T + 1 values)."""
    u = 1.0 - torch.arange(steps + 1, dtype=torch.float64) / steps
    return shift * u / (1.0 + (shift - 1.0) * u)


def noise_levels(grid: torch.Tensor, eta: float, form: NoiseForm) -> torch.Tensor:
    """sigma_i for every step i = 0..T-1 (float64).

    "flow": sigma_i = eta * sqrt(s_i / (1 - s_i)); at s_0 = 1 the denominator uses 1 - s_1.
    "dance": sigma_i = eta for every step (DanceGRPO's constant coefficient).
    """
    s = grid[:-1]
    if form == "dance":
        return torch.full_like(s, float(eta))
    if form != "flow":
        raise ValueError(f"unknown noise form {form!r}")
    denom = torch.where(s >= 1.0, 1.0 - grid[1], 1.0 - s)
    return eta * torch.sqrt(s / denom)


def _per_sample(value: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or a [B] tensor against x of shape [B, ...]."""
    value = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    return value.reshape(value.shape + (1,) * (x.ndim - value.ndim))


def ode_step(x: torch.Tensor, v: torch.Tensor, s: torch.Tensor | float, s_next: torch.Tensor | float):
    """Deterministic Euler step x' = x - (s - s_next) v. Per-sample s allowed."""
    return x - (_per_sample(s, x) - _per_sample(s_next, x)) * v


def sde_mean(x, v, s, s_next, sigma):
    """mu = x - Delta [v + sigma^2 / (2 s) (x + (1 - s) v)]: the mean of the SDE step."""
    s_, delta, sig = _per_sample(s, x), _per_sample(s, x) - _per_sample(s_next, x), _per_sample(sigma, x)
    return x - delta * (v + sig**2 / (2 * s_) * (x + (1 - s_) * v))


def sde_std(x, s, s_next, sigma):
    """The injected noise std sigma * sqrt(Delta), shaped to broadcast against x."""
    return _per_sample(sigma, x) * torch.sqrt(_per_sample(s, x) - _per_sample(s_next, x))


def gaussian_logprob(x_next: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Element-mean log N(x_next; mean, std^2) per sample: shape [B].

    The normalising term is taken in float64 so that it rounds the same way whatever the batch
    layout: rollout and training must agree to the bit for the on-policy ratio to be exactly 1.
    """
    quadratic = ((x_next - mean) ** 2 / (2 * std**2)).flatten(1).mean(1)
    log_norm = 0.5 * torch.log(2 * math.pi * std.double() ** 2).reshape(-1)
    return (-quadratic.double() - log_norm).float()


def sde_step(x, v, s, s_next, sigma, noise: torch.Tensor):
    """One stochastic step with its log-probability: returns (x_next, logp [B], mean).

    `noise` is the standard normal draw, passed in so callers control the RNG and batching.
    """
    mean = sde_mean(x, v, s, s_next, sigma)
    std = sde_std(x, s, s_next, sigma)
    x_next = mean + std * noise
    return x_next, gaussian_logprob(x_next, mean, std), mean
