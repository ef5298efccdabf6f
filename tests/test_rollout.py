"""Batched rollouts: same outputs as one-at-a-time, the expected model-call counts, group structure."""
import torch

from engine.algorithms import build_algorithm
from engine.models import build_model
from engine.models.base import VelocityRunner
from engine.method.rollout import RolloutNoise
from engine.method.sampling import completion_schedule


def rollout(cfg, micro_batch, prompts=2, seed=0, iteration=0):
    model = build_model(cfg.model)
    runner = VelocityRunner(model, micro_batch)
    cond = model.encode_prompts(cfg.training_prompts()[:prompts])
    out = build_algorithm(cfg).rollout(runner, cond, RolloutNoise.seeded(seed, iteration, 0, prompts), iteration)
    return out, runner


def test_batched_rollout_equals_one_at_a_time(small_config):
    for name in ("g2rpo", "egrpo", "dancegrpo", "flowgrpo", "mixgrpo", "diffusionnft"):
        merged = ["algorithm.merge_steps=[1,2,1,3]"] if name == "egrpo" else []
        cfg = small_config(f"algorithm.name={name}", *merged)
        batched, runner_b = rollout(cfg, micro_batch=512)
        single, runner_s = rollout(cfg, micro_batch=1)
        assert runner_b.evaluations == runner_s.evaluations
        assert torch.allclose(batched.images, single.images, atol=1e-5), name
        for tb, ts in zip(batched.transitions, single.transitions, strict=True):
            assert torch.allclose(tb.logp_old, ts.logp_old, atol=1e-5)
            assert torch.allclose(tb.x_next, ts.x_next, atol=1e-5)


def expected_g2rpo_evaluations(K, lambdas, T, G, P):
    """Anchor up to max K, then per member: the shared fine step and shared velocity at k + 2,
    and each granularity's own remaining evaluations."""
    per_prompt = max(K) + 1
    for k in K:
        shared = int(k + 1 < T) + int(k + 2 < T)
        own = sum(max(len(completion_schedule(k, lam, T)) - 3, 0) for lam in lambdas)
        per_prompt += G * (shared + own)
    return P * per_prompt


def test_g2rpo_model_evaluations_are_counted_exactly(small_config):
    for K, lambdas in (([0, 1, 2, 3], [1, 2]), ([0, 6, 7], [1, 2, 3]), ([5], [1])):
        cfg = small_config(f"algorithm.branch_steps={K}", f"algorithm.granularities={lambdas}")
        _, runner = rollout(cfg, micro_batch=64)
        assert runner.evaluations == expected_g2rpo_evaluations(K, lambdas, 8, 4, 2)


def test_g2rpo_groups_share_the_anchor_state(small_config):
    cfg = small_config("algorithm.branch_steps=[0,2,5]")
    out, _ = rollout(cfg, micro_batch=64)
    assert [t.step for t in out.transitions] == [0, 2, 5]
    assert out.groups == (2, 3, 2, 4)  # (|Lambda|, |K|, P, G)
    assert out.images.shape[0] == 2 * 3 * 2 * 4
    for t in out.transitions:
        assert t.x.shape[0] == 2  # one state per prompt: one forward serves the G members
        assert t.member_state.tolist() == [0] * 4 + [1] * 4
        assert len(torch.unique(t.x_next.flatten(1), dim=0)) == 8  # each member its own noise


def test_g2rpo_reward_variance_comes_only_from_the_branch_noise(small_config):
    """With no noise at the branch (eta -> tiny), all members finish on the same image."""
    cfg = small_config("algorithm.eta=1e-12")
    out, _ = rollout(cfg, micro_batch=64)
    images = out.images.reshape(2, 4, 2, 4, -1)  # (L, K, P, G, pixels)
    assert torch.allclose(images, images[..., :1, :].expand_as(images), atol=1e-5)


def test_dancegrpo_trains_a_random_share_never_the_last_step(small_config):
    cfg = small_config("algorithm.name=dancegrpo")
    steps = [[t.step for t in rollout(cfg, 64, seed=s)[0].transitions] for s in range(4)]
    for chosen in steps:
        assert len(chosen) == round(0.6 * 7) and max(chosen) < 7
    assert len({tuple(c) for c in steps}) > 1  # random per iteration


def test_shared_initial_noise_is_one_state_until_the_first_sde_step(small_config):
    out, _ = rollout(small_config("algorithm.name=mixgrpo", "algorithm.window_size=3"), 64, iteration=50)
    first = out.transitions[0]
    assert first.step == 2 and first.x.shape[0] == 2  # window moved twice (every 25 iterations)
    flow, _ = rollout(small_config("algorithm.name=flowgrpo"), 64)
    assert [t.step for t in flow.transitions] == list(range(7))
    assert flow.transitions[0].x.shape[0] == 8  # independent initial noise per member


def test_mixgrpo_window_wraps_around(small_config):
    alg = build_algorithm(small_config("algorithm.name=mixgrpo", "algorithm.window_size=3"))
    starts = [alg.window(it).start for it in range(0, 25 * 6, 25)]
    assert starts == [0, 1, 2, 3, 4, 0]  # T - w = 5 positions, never reaching the last step


def test_inference_mode_rollouts_equal_no_grad_ones_and_train_once_made_normal(small_config):
    """The trainer samples under torch.inference_mode: the same numbers as under no_grad, and
    normal_tensors makes them usable by the update (an inference tensor cannot be saved for backward)."""
    from engine.method.rollout import normal_tensors

    for name in ("g2rpo", "diffusionnft"):
        cfg = small_config(f"algorithm.name={name}")
        model = build_model(cfg.model)
        runner = VelocityRunner(model, 5)
        cond = model.encode_prompts(cfg.training_prompts()[:1])
        algorithm = build_algorithm(cfg)
        outs = {}
        for mode in (torch.no_grad, torch.inference_mode):
            with mode():
                outs[mode] = algorithm.rollout(runner, cond, RolloutNoise.seeded(0, 0, 0, 1), 0)
        plain, fast = outs[torch.no_grad], outs[torch.inference_mode]
        assert fast.images.is_inference() and torch.equal(fast.images, plain.images)
        for a, b in zip(fast.transitions, plain.transitions, strict=True):
            assert torch.equal(a.x, b.x) and torch.equal(a.x_next, b.x_next) and torch.equal(a.logp_old, b.logp_old)
        fast = normal_tensors(fast)
        tensors = [fast.images, fast.prompt_idx] + [getattr(t, f) for t in fast.transitions
                                                   for f in ("x", "cond_idx", "member_state", "x_next", "logp_old")]
        if fast.forward is not None:
            tensors += [fast.forward.x0, fast.forward.time_idx, fast.forward.eps]
        assert tensors and not any(t.is_inference() for t in tensors)
        x = fast.transitions[0].x if fast.transitions else fast.forward.x0
        weight = torch.ones((), requires_grad=True)
        (weight * x).sum().backward()  # saved for backward: refused for an inference tensor
        assert weight.grad is not None
