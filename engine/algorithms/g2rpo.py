"""G²RPO: Singular Stochastic Sampling with Multi-Granularity Advantage Integration.

Per prompt: one deterministic anchor trajectory; at each branch step k in K all G members take ONE
SDE step from the anchor's x_k (reusing the anchor's velocity there), then every member is finished by
ODE at each granularity lambda in Lambda. The group for advantages is (prompt, k); the advantage of
member i sums its z-scores over granularities and reward models, then is clamped.

E-GRPO (algorithm.name: egrpo, `merge_steps`) is the same rollout where the SDE step at k spans m
grid steps, s_k -> s_{k+m}, with the noise level of s_k: several low-entropy steps merged into one
high-entropy step. Its completion starts where that step lands, and advantages are still normalised
within each (prompt, k) group, i.e. within each merged step.

All branches, members and granularities that need the model at the same wave share one batched call.
The first ODE step of a branch (k+m -> k+m+1) and the velocity at k+m+1 are the same for every lambda,
so they are computed once per member and shared across granularities.
"""
from __future__ import annotations

import torch

from engine.algorithms.base import Algorithm, Rollout, local
from engine.method.objective import group_advantages, integrate_advantages
from engine.method.rollout import Transition, integrate_ode
from engine.method.sampling import completion_schedule, ode_step, sde_step


class G2RPO(Algorithm):
    def rollout(self, runner, cond, noise, iteration):
        a, G, T, grid, prompts = self.cfg.algorithm, self.group, self.steps, self.grid, noise.prompts
        K, lambdas, span = sorted(a.branch_steps), a.granularities, a.spans()
        device = cond[next(iter(cond))].device
        prompt_rows = torch.arange(prompts, device=device)

        # 1. The anchor: a deterministic ODE up to the last branch step (later steps are unused).
        shape = runner.model.latent_shape
        x = noise.randn(*shape).to(device)
        anchor_x, anchor_v = {}, {}
        for j in range(max(K) + 1):
            v = runner(x, grid[j].to(x), cond, prompt_rows)
            if j in K:
                anchor_x[j], anchor_v[j] = x, v
            x = ode_step(x, v, grid[j], grid[j + 1])

        # 2. One SDE step per member from each branch point; rows ordered (k, prompt, member).
        members = prompt_rows.repeat_interleave(G)
        branch_rows = [(k, p) for k in K for p in range(prompts) for _ in range(G)]
        ks = torch.tensor([k for k, _ in branch_rows])
        lands = ks + torch.tensor([span[k] for k, _ in branch_rows])  # where each branch's SDE step lands
        xk = torch.stack([anchor_x[k] for k in K])[:, members].flatten(0, 1)
        vk = torch.stack([anchor_v[k] for k in K])[:, members].flatten(0, 1)
        eps = noise.randn(len(K), G, *shape).transpose(0, 1).flatten(0, 2).to(device)  # each group draws [K, G]
        x_branch, logp, _ = sde_step(xk, vk, grid[ks].to(device), grid[lands].to(device), self.sigmas[ks].to(device),
                                     eps)
        row_prompt = members.repeat(len(K))
        transitions = [
            Transition(k, anchor_x[k], prompt_rows, members, x_branch[i * prompts * G:(i + 1) * prompts * G],
                       logp[i * prompts * G:(i + 1) * prompts * G], span=span[k])
            for i, k in enumerate(K)
        ]

        # 3. ODE completion from where the branch landed (k+1 unless merged): the shared fine step
        #    k+1 -> k+2, the shared velocity at k+2, then each granularity strides on its own.
        #    Rows of the last part ordered (lambda, k, p, i).
        schedules = [completion_schedule(int(j) - 1, lam, T, a.completion) for lam in lambdas for j in lands]
        x_fine = integrate_ode(runner, x_branch, cond, row_prompt, grid, [s[:2] for s in schedules[: len(ks)]])
        rest = [s[1:] for s in schedules]  # every one starts at k + 2 (or is just [T])
        needs_v = torch.tensor([len(s) > 1 for s in rest[: len(ks)]])
        v_shared = torch.zeros_like(x_fine)
        if needs_v.any():
            idx = torch.nonzero(needs_v).squeeze(1)
            v_shared[idx] = runner(x_fine[idx], grid[lands[idx] + 1].to(x_fine), cond, row_prompt[idx])
        L = len(lambdas)
        x_final = integrate_ode(runner, x_fine.repeat(L, *[1] * (x_fine.ndim - 1)), cond, row_prompt.repeat(L),
                                grid, [s if len(s) > 1 else [T] for s in rest], v_first=v_shared.repeat(L, *[1] * (x_fine.ndim - 1)))
        images = runner.model.decode(x_final)
        return Rollout(images, row_prompt.repeat(L), (L, len(K), prompts, G), transitions,
                       info={"branch_steps": K, "granularities": list(lambdas), "merge_steps": [span[k] for k in K]})

    def advantages(self, rollout, rewards, weights, gather=local):
        per_reward = rewards.reshape(len(rewards), *rollout.groups)  # [M, L, K, P, G]
        adv = group_advantages(per_reward)  # every group is whole on one process: nothing to gather
        mixed = integrate_advantages(adv, weights, self.cfg.algorithm.adv_clamp)  # [K, P, G]
        for i, t in enumerate(rollout.transitions):
            t.advantage = mixed[i].reshape(-1).to(t.x_next.device)
        # What the UI draws: per prompt of the global batch, every member's reward and advantage at
        # every (k, lambda): [M, P, K, L, G] and [P, K, G], gathered prompt-first, as nested lists.
        return {
            "g2rpo": {
                "branch_steps": rollout.info["branch_steps"],
                "granularities": rollout.info["granularities"],
                **({"merge_steps": rollout.info["merge_steps"]} if any(m > 1 for m in rollout.info["merge_steps"]) else {}),
                "rewards": gather(per_reward.permute(3, 0, 2, 1, 4).contiguous()).transpose(0, 1).tolist(),
                "advantages": gather(adv.permute(3, 0, 2, 1, 4).contiguous()).transpose(0, 1).tolist(),
                "mixed_advantage": gather(mixed.permute(1, 0, 2).contiguous()).tolist(),
            }
        }


class EGRPO(G2RPO):
    """E-GRPO (Zhang et al. 2026, arXiv 2601.00423): G²RPO with merged SDE steps (`merge_steps`).

    The authors' code (shengjun-zhang/VisualGRPO) runs it as G²RPO's sampler with a per-branch
    merge list, so it is G²RPO's rollout and advantages with each branch spanning its own steps."""
