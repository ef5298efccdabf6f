"""The policy updates: for one transition (one forward per distinct state, the clipped loss per member),
and DiffusionNFT's forward-process loss on clean samples."""
from __future__ import annotations

import contextlib
import time

import torch

from engine.models.base import Cond, VelocityRunner
from engine.method.objective import clipped_policy_loss, gaussian_kl, nft_loss
from engine.method.rollout import ForwardSamples, Transition
from engine.method.sampling import gaussian_logprob, sde_mean, sde_std


def policy_loss_backward(runner: VelocityRunner, t: Transition, cond: Cond, grid: torch.Tensor,
                         sigmas: torch.Tensor, clip_range: float, kl_beta: float, scale: float,
                         backward, reference=None) -> dict:
    """Backpropagate mean_i loss_i * scale for transition t, chunk by chunk; return statistics.

    Chunks are the runner's chunks over the distinct states, exactly as in the rollout, so the
    on-policy ratio is exactly 1. `reference` is a context manager that disables the adapter
    (for the KL term). `backward` is accelerate's backward.
    """
    device = t.x.device
    s, s_next, sigma = grid[t.step].to(device), grid[t.step + t.span].to(device), sigmas[t.step].to(device)
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


def forward_loss_backward(runner: VelocityRunner, samples: ForwardSamples, prompt_idx: torch.Tensor, cond: Cond,
                          grid: torch.Tensor, beta: float, clamp: float, kl_beta: float, backward, reference,
                          step=None, old=contextlib.nullcontext) -> dict:
    """DiffusionNFT's update: backpropagate the mean nft_loss over every (member, time) row.

    The old policy's velocities are computed first, over the same chunks the training forward
    uses, so before the first optimizer step v equals v_old exactly (`old_deviation` = 0 there).
    `step`, when given, is called after each time column's rows (one optimizer step per column);
    otherwise the whole loss accumulates into one gradient. `old` is a context manager within which
    the model is the old policy (an EMA of the trained weights; by default the trained weights).
    """
    members, times = samples.time_idx.shape
    x0 = samples.x0[:, None].expand(members, times, *samples.x0.shape[1:])
    s = grid.to(samples.x0)[samples.time_idx]  # [members, times]
    s_ = s.reshape(*s.shape, *[1] * (x0.ndim - 2))
    x_t = (1 - s_) * x0 + s_ * samples.eps
    # Columns: one per drawn time, each holding every member once (per-column optimizer steps).
    columns = [(x_t[:, j], s[:, j], x0[:, j]) for j in range(times)]
    chunks = runner.chunks(members)
    with torch.no_grad(), old():
        v_old = [torch.cat([runner.one_chunk(x[c], sj[c], cond, prompt_idx[c]) for c in chunks]) for x, sj, _ in columns]
    losses, deviations, kls = [], [], []
    scale = 1.0 / members if step else 1.0 / (members * times)
    for j, (x, sj, target) in enumerate(columns):
        for c in chunks:
            v = runner.one_chunk(x[c], sj[c], cond, prompt_idx[c])
            loss = nft_loss(v, v_old[j][c], x[c], target[c], sj[c], samples.optimality[c], beta, clamp)
            if kl_beta > 0:
                with torch.no_grad(), reference():
                    v_ref = runner.one_chunk(x[c], sj[c], cond, prompt_idx[c])
                kl = ((v - v_ref) ** 2).flatten(1).mean(1)
                loss = loss + kl_beta * kl
                kls.append(kl.detach())
            start = time.perf_counter()
            backward(loss.sum() * scale)
            runner.seconds += time.perf_counter() - start
            losses.append(loss.detach())
            deviations.append(((v.detach() - v_old[j][c]) ** 2).flatten(1).mean(1))
        if step:
            step()
    return {
        "loss": torch.cat(losses).mean().item(),
        "old_deviation": torch.cat(deviations).mean().item(),
        "old_deviation_first": deviations[0].max().item(),  # before any step: exactly 0 (no EMA old policy)
        **({"kl": torch.cat(kls).mean().item()} if kls else {}),
    }
