"""Batched rollouts: every trajectory that needs the model at the same wave goes through one
(micro-batched) call with per-sample times. Algorithms compose these two primitives.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass

import numpy as np
import torch

from engine.models.base import Cond, VelocityRunner
from engine.method.sampling import ode_step, sde_step


def seeded_generator(*keys: int) -> torch.Generator:
    """A CPU generator determined by its integer keys alone: resuming at iteration n draws exactly
    the noise the uninterrupted run drew there, with no RNG state to carry. SeedSequence pads keys
    with zeros, so two key lists must differ in more than trailing zeros (callers tag their streams)."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(keys)).generate_state(1)[0]))


# Stream tags: each kind of draw of an iteration has its own generator.
PROMPT_STREAM, SHARED_STREAM, GROUP_STREAM = 1, 2, 3


@dataclass
class RolloutNoise:
    """Where a rollout's random draws come from, independent of how prompts are split over processes.

    `groups` holds one generator per prompt group, seeded by (seed, iteration, global prompt index):
    all of a group's noise comes from it, so a group draws the same noise whichever process or
    batch it is in. `shared` is seeded by (seed, iteration) only, for choices every process must
    make alike (DanceGRPO's trained steps).
    """

    groups: list[torch.Generator]
    shared: torch.Generator

    @classmethod
    def seeded(cls, seed: int, iteration: int, first: int, count: int) -> "RolloutNoise":
        """The noise of global prompts first .. first + count - 1 at this iteration."""
        return cls([seeded_generator(seed, iteration, GROUP_STREAM, first + i) for i in range(count)],
                   seeded_generator(seed, iteration, SHARED_STREAM))

    @property
    def prompts(self) -> int:
        return len(self.groups)

    def randn(self, *shape: int) -> torch.Tensor:
        """One standard normal draw of `shape` per group, stacked: [groups, *shape] on the CPU."""
        return torch.stack([torch.randn(shape, generator=g) for g in self.groups])


@dataclass
class Transition:
    """One trained SDE step of a batch of members, everything the policy loss needs.

    The velocity is evaluated at `x` (N distinct states); member m started from state
    `member_state[m]` and landed on `x_next[m]` with log-probability `logp_old[m]`. In G²RPO all
    G members of a (prompt, k) group share one state, so one forward serves the whole group.
    `member_state` is sorted, so a chunk of states owns a contiguous run of members. The step goes
    from grid point `step` to `step + span` with the noise level of `step`.
    """

    step: int
    x: torch.Tensor
    cond_idx: torch.Tensor
    member_state: torch.Tensor
    x_next: torch.Tensor
    logp_old: torch.Tensor
    advantage: torch.Tensor | None = None
    span: int = 1  # grid steps the SDE step covers: s_step -> s_{step+span} (E-GRPO merges several)


@dataclass
class ForwardSamples:
    """What a forward-process loss trains on: member m's clean latent x0[m], noised to
    x_t = (1 - s) x0 + s eps at `times` grid points each (rows member-major), and its optimality
    probability r[m] once advantages are known."""

    x0: torch.Tensor  # [members, ...]
    time_idx: torch.Tensor  # [members, times] grid indices
    eps: torch.Tensor  # [members, times, ...]
    optimality: torch.Tensor | None = None  # [members]


def normal_tensors(value):
    """`value` (a Rollout: its transitions, forward samples, dicts and lists) with every inference
    tensor replaced by a normal copy. Rollouts run under torch.inference_mode (no autograd
    bookkeeping, the same kernels: the values are equal), but a tensor made there cannot be saved
    for backward, and the update backpropagates through the rollout's states."""
    if isinstance(value, torch.Tensor):
        return value.clone() if value.is_inference() else value
    if isinstance(value, list):
        return [normal_tensors(v) for v in value]
    if isinstance(value, dict):
        return {k: normal_tensors(v) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            setattr(value, f.name, normal_tensors(getattr(value, f.name)))
    return value


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


@torch.no_grad()
def ode_images(runner: VelocityRunner, prompts: list[str], noise: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Deterministic ODE samples of prompts[i] from noise[i] along the whole grid, decoded: the one
    sampling path of the trainer's samples, engine.evaluate and base-vs-tuned comparisons (each
    chooses its own noise)."""
    model = runner.model
    device = next(model.transformer.parameters()).device
    cond = {k: v.to(device) for k, v in model.encode_prompts(prompts).items()}
    rows = torch.arange(len(prompts), device=device)
    x = integrate_ode(runner, noise.to(device), cond, rows, grid, [list(range(len(grid)))] * len(prompts))
    return model.decode(x)


def sample_trajectories(runner: VelocityRunner, cond: Cond, group: int, grid: torch.Tensor,
                        sigmas: torch.Tensor, stochastic: list[bool], shared_noise: bool,
                        noise: RolloutNoise, device, start: torch.Tensor | None = None) -> tuple[torch.Tensor, list[Transition]]:
    """G trajectories per prompt, SDE at the steps marked `stochastic`, ODE elsewhere.

    With `shared_noise` the G members of a prompt start from one draw and stay one row until the
    first stochastic step, so that shared prefix costs one model call per prompt, not G.
    Returns the final latents [prompts * group, ...] (rows ordered prompt-major) and one
    Transition per stochastic step. `start`, when given, is the initial noise (as drawn here: one
    `noise.randn` of the members' rows), for a caller that needs it afterwards.
    """
    shape, prompts = runner.model.latent_shape, noise.prompts
    members = torch.arange(prompts, device=device).repeat_interleave(group)
    x = (noise.randn(1 if shared_noise else group, *shape).flatten(0, 1) if start is None else start).to(device)
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
        eps = noise.randn(group, *shape).flatten(0, 1).to(device)  # rows prompt-major, like members
        x_next, logp, _ = sde_step(x[member_state], v[member_state], s, s_next, sigmas[j].to(x), eps)
        transitions.append(Transition(j, x, cond_idx, member_state, x_next, logp))
        x, cond_idx, shared = x_next, members, False
    if shared:  # no stochastic step at all: the members are copies
        x = x[members]
    return x, transitions
