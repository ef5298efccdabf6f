"""Batched rollouts: every trajectory that needs the model at the same wave goes through one
(micro-batched) call with per-sample times. Algorithms compose these two primitives.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.models.base import Cond, VelocityRunner
from engine.sampling import ode_step, sde_step


@dataclass
class Transition:
    """One trained SDE step of a batch of members, everything the policy loss needs.

    The velocity is evaluated at `x` (N distinct states); member m started from state
    `member_state[m]` and landed on `x_next[m]` with log-probability `logp_old[m]`. In G²RPO all
    G members of a (prompt, k) group share one state, so one forward serves the whole group.
    `member_state` is sorted, so a chunk of states owns a contiguous run of members.
    """

    step: int
    x: torch.Tensor
    cond_idx: torch.Tensor
    member_state: torch.Tensor
    x_next: torch.Tensor
    logp_old: torch.Tensor
    advantage: torch.Tensor | None = None


def integrate_ode(runner: VelocityRunner, x: torch.Tensor, cond: Cond, cond_idx: torch.Tensor,
                  grid: torch.Tensor, schedules: list[list[int]], v_first: torch.Tensor | None = None):
    """Finish each row along its own list of grid indices by Euler steps, in waves.

    Rows at different grid points share a wave (per-sample times). `v_first`, when given, is the
    velocity at every row's first point, already known to the caller (no model call for it).
    """
    rows = len(schedules)
    length = torch.tensor([len(s) for s in schedules])
    table = torch.zeros(rows, int(length.max()), dtype=torch.long)
    for r, schedule in enumerate(schedules):
        table[r, : len(schedule)] = torch.tensor(schedule)
    pos = torch.zeros(rows, dtype=torch.long)
    x = x.clone()
    wave = 0
    while True:
        active = torch.nonzero(pos < length - 1).squeeze(1)
        if active.numel() == 0:
            return x
        s_now = grid[table[active, pos[active]]].to(x)
        s_next = grid[table[active, pos[active] + 1]].to(x)
        if wave == 0 and v_first is not None:
            v = v_first[active]
        else:
            v = runner(x[active], s_now, cond, cond_idx[active])
        x[active] = ode_step(x[active], v, s_now, s_next)
        pos[active] += 1
        wave += 1


def sample_trajectories(runner: VelocityRunner, cond: Cond, prompts: int, group: int, grid: torch.Tensor,
                        sigmas: torch.Tensor, stochastic: list[bool], shared_noise: bool,
                        generator: torch.Generator, device) -> tuple[torch.Tensor, list[Transition]]:
    """G trajectories per prompt, SDE at the steps marked `stochastic`, ODE elsewhere.

    With `shared_noise` the G members of a prompt start from one draw and stay one row until the
    first stochastic step, so that shared prefix costs one model call per prompt, not G.
    Returns the final latents [prompts * group, ...] (rows ordered prompt-major) and one
    Transition per stochastic step.
    """
    shape = runner.model.latent_shape
    members = torch.arange(prompts, device=device).repeat_interleave(group)
    rows = prompts if shared_noise else prompts * group
    x = torch.randn((rows, *shape), generator=generator).to(device)
    cond_idx = torch.arange(prompts, device=device) if shared_noise else members
    shared = shared_noise  # one row per prompt until the first stochastic step
    transitions = []
    for j, is_sde in enumerate(stochastic):
        s, s_next = grid[j].to(x), grid[j + 1].to(x)
        v = runner(x, s, cond, cond_idx)
        if not is_sde:
            x = ode_step(x, v, s, s_next)
            continue
        member_state = members if shared else torch.arange(x.shape[0], device=device)
        noise = torch.randn((len(member_state), *shape), generator=generator).to(device)
        x_next, logp, _ = sde_step(x[member_state], v[member_state], s, s_next, sigmas[j].to(x), noise)
        transitions.append(Transition(j, x, cond_idx, member_state, x_next, logp))
        x, cond_idx, shared = x_next, members, False
    if shared:  # no stochastic step at all: the members are copies
        x = x[members]
    return x, transitions
