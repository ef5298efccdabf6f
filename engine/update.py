"""The policy update for one transition: one forward per distinct state, the clipped loss per member."""
from __future__ import annotations

import time

import torch

from engine.models.base import Cond, VelocityRunner
from engine.objective import clipped_policy_loss, gaussian_kl
from engine.rollout import Transition
from engine.sampling import gaussian_logprob, sde_mean, sde_std


def policy_loss_backward(runner: VelocityRunner, t: Transition, cond: Cond, grid: torch.Tensor,
                         sigmas: torch.Tensor, clip_range: float, kl_beta: float, scale: float,
                         backward, reference=None) -> dict:
    """Backpropagate mean_i loss_i * scale for transition t, chunk by chunk; return statistics.

    Chunks are the runner's chunks over the distinct states, exactly as in the rollout, so the
    on-policy ratio is exactly 1. `reference` is a context manager that disables the adapter
    (for the KL term). `backward` is accelerate's backward.
    """
    device = t.x.device
    s, s_next, sigma = grid[t.step].to(device), grid[t.step + 1].to(device), sigmas[t.step].to(device)
    members = len(t.member_state)
    ratios, losses, kls = [], [], []
    for chunk in runner.chunks(t.x.shape[0]):
        lo = int(torch.searchsorted(t.member_state, chunk.start))
        hi = int(torch.searchsorted(t.member_state, chunk.stop))
        local = t.member_state[lo:hi] - chunk.start
        x = t.x[chunk]
        v = runner.one_chunk(x, s.expand(x.shape[0]), cond, t.cond_idx[chunk])
        mean = sde_mean(x[local], v[local], s, s_next, sigma)
        std = sde_std(x[local], s, s_next, sigma)
        logp = gaussian_logprob(t.x_next[lo:hi], mean, std)
        ratio = torch.exp(logp - t.logp_old[lo:hi])
        loss = clipped_policy_loss(ratio, t.advantage[lo:hi], clip_range)
        if kl_beta > 0:
            with torch.no_grad(), reference():
                v_ref = runner.one_chunk(x, s.expand(x.shape[0]), cond, t.cond_idx[chunk])
            kl = gaussian_kl(mean, sde_mean(x[local], v_ref[local], s, s_next, sigma), std)
            loss = loss + kl_beta * kl
            kls.append(kl.detach())
        start = time.perf_counter()
        backward(loss.sum() * scale / members)
        runner.seconds += time.perf_counter() - start  # the backward is model time too
        ratios.append(ratio.detach())
        losses.append(loss.detach())
    ratio = torch.cat(ratios)
    logratio = torch.log(ratio)
    return {
        "loss": torch.cat(losses).mean().item(),
        "ratio_mean": ratio.mean().item(),
        "ratio_min": ratio.min().item(),
        "ratio_max": ratio.max().item(),
        "clip_fraction": ((ratio - 1).abs() > clip_range).float().mean().item(),
        "approx_kl": (0.5 * logratio**2).mean().item(),
        **({"kl": torch.cat(kls).mean().item()} if kls else {}),
    }
