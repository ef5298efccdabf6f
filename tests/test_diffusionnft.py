"""DiffusionNFT: the loss's invariants, an exact small case, and the trainer's forward-process update."""
import pytest
import torch

from engine.method.objective import nft_loss, optimality_probability
from engine.training.records import read_records
from engine.training.trainer import Trainer


def random_case(seed=0, n=3):
    g = torch.Generator().manual_seed(seed)
    x0, eps, v_old = (torch.randn(n, 4, 5, generator=g) for _ in range(3))
    s = torch.rand(n, generator=g)
    x_t = (1 - s[:, None, None]) * x0 + s[:, None, None] * eps
    return x0, x_t, s, v_old


def test_optimality_probability_maps_the_clamped_advantage_to_0_1():
    adv = torch.tensor([-9.0, -5.0, -2.5, 0.0, 2.5, 5.0, 9.0])
    assert optimality_probability(adv, 5.0).tolist() == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]


@pytest.mark.parametrize("beta", [1.0, 0.1])
def test_at_the_old_policy_equal_rewards_give_no_gradient(beta):
    x0, x_t, s, v_old = random_case()
    v = v_old.clone().requires_grad_(True)
    nft_loss(v, v_old, x_t, x0, s, torch.full((3,), 0.5), beta, 5.0).sum().backward()
    assert v.grad.abs().max() < 1e-6


def test_an_exact_small_case():
    # One element, so every mean is the value itself: x0 = 1, x_t = 0.5, s = 0.5, v_old = 0, v = 0.4,
    # beta = 1: v+ = 0.4 -> x0_hat = 0.3, err -0.7, loss 0.49 / 0.7 = 0.7; v- = -0.4 -> x0_hat = 0.7,
    # err -0.3, loss 0.09 / 0.3 = 0.3. r = 0.75, clamp 5: (0.75 * 0.7 + 0.25 * 0.3) * 5 = 3.0.
    one = lambda value: torch.tensor([[value]])
    loss = nft_loss(one(0.4), one(0.0), one(0.5), one(1.0), torch.tensor([0.5]), torch.tensor([0.75]), 1.0, 5.0)
    assert loss.item() == pytest.approx(3.0, abs=1e-6)


def test_a_good_sample_pulls_the_velocity_towards_it_and_a_bad_one_pushes_it_away():
    x0, x_t, s, v_old = random_case(seed=1)
    target = (x_t - x0) / s[:, None, None]  # the velocity whose x0_hat is exactly x0
    for r, sign in ((1.0, 1), (0.0, -1)):
        v = v_old.clone().requires_grad_(True)
        nft_loss(v, v_old, x_t, x0, s, torch.full((3,), r), 1.0, 5.0).sum().backward()
        step = -v.grad  # gradient descent's direction
        towards = (step * (target - v_old)).flatten(1).sum(1)
        assert (sign * towards > 0).all(), r


def test_the_first_update_starts_at_the_old_policy_and_the_run_resumes_exactly(small_config, tmp_path):
    # micro_batch 3 splits the 8 members into uneven chunks: the old and trained velocities agree anyway
    cfg = small_config("algorithm.name=diffusionnft", "train.micro_batch=3", "train.iterations=4",
                       "train.checkpoint_every=2", "train.learning_rate=1e-2")
    straight = Trainer(cfg, tmp_path / "straight").run(progress=False)
    first = straight[0]
    assert first["old_deviation_first"] == 0.0 and first["old_deviation"] > 0  # per_step: later columns moved
    assert first["trained_steps"] == [] and first["model_evaluations"]["train"] == 2 * 4 * 4 * 2
    interrupted = Trainer(cfg, tmp_path / "resumed")
    for it in range(3):  # the checkpoint after 2, then iteration 2 is lost with the process
        interrupted.iteration(it)
    resumed = Trainer(cfg, tmp_path / "resumed", resume=True)
    assert resumed.start_iteration == 2
    for a, b in zip(straight[2:], resumed.run(progress=False), strict=True):
        assert (a["loss"], a["grad_norm"], a["reward"]) == (b["loss"], b["grad_norm"], b["reward"])
    assert [r["iteration"] for r in read_records(tmp_path / "resumed" / "records.jsonl")] == [0, 1, 2, 3]


def test_members_of_a_group_start_from_their_own_noise(small_config, tmp_path):
    cfg = small_config("algorithm.name=diffusionnft", "train.iterations=1")
    record = Trainer(cfg, tmp_path).iteration(0)
    assert record["reward"]["brightness"]["std"] > 0  # ODE samples of one prompt differ only by their noise


def test_diffusionnft_raises_a_reward_a_lora_can_move(tmp_path, small_config):
    """NFT moves the policy towards its better samples, so one iteration gains a share of the spread
    between a group's members (about 0.014 in brightness for the random model's ODE samples)."""
    cfg = small_config("algorithm.name=diffusionnft", "train.learning_rate=3e-2", "train.iterations=8",
                       "algorithm.group_size=6", "train.optimizer_step=per_step")
    trainer = Trainer(cfg, tmp_path)
    prompts = cfg.training_prompts() * 4
    before = trainer.sample(prompts, seed_key=99).mean().item()
    records = trainer.run(progress=False)
    after = trainer.sample(prompts, seed_key=99).mean().item()
    spread = records[0]["reward"]["brightness"]["std"]
    assert after > before + spread / 3, (before, after, spread)


@pytest.mark.parametrize("beta, clamp", [(1.0, 5.0), (0.3, 5.0), (1.0, 2.0)])
def test_at_the_old_policy_the_gradient_is_advantage_weighted_flow_matching(beta, clamp):
    """With v = v_old, beta and the clamp cancel: d loss / d v = -2 s A (x0_hat - x0) / (w D) for |A| < clamp,
    D the elements per sample (the loss is an element mean)."""
    x0, x_t, s, v_old = random_case(seed=2)
    advantage = torch.tensor([1.5, -0.7, 0.2])
    v = v_old.clone().requires_grad_(True)
    r = optimality_probability(advantage, clamp)
    nft_loss(v, v_old, x_t, x0, s, r, beta, clamp).sum().backward()
    err = x_t - s[:, None, None] * v_old - x0
    w = err.abs().flatten(1).mean(1)
    expected = -2 * s[:, None, None] * advantage[:, None, None] * err / (w[:, None, None] * err[0].numel())
    assert torch.allclose(v.grad, expected, atol=1e-6)


def test_group_noise_noises_a_groups_members_alike(small_config):
    from engine.algorithms import build_algorithm
    from engine.models import build_model
    from engine.models.base import VelocityRunner
    from engine.method.rollout import RolloutNoise

    for shared in (False, True):
        cfg = small_config("algorithm.name=diffusionnft", f"algorithm.nft_group_noise={str(shared).lower()}")
        model = build_model(cfg.model)
        cond = model.encode_prompts(cfg.training_prompts()[:2])
        out = build_algorithm(cfg).rollout(VelocityRunner(model, 64), cond, RolloutNoise.seeded(0, 0, 0, 2), 0)
        eps = out.forward.eps.reshape(2, 4, *out.forward.eps.shape[1:])  # [P, G, times, ...]
        times = out.forward.time_idx.reshape(2, 4, -1)
        alike = torch.equal(eps[:, :1].expand_as(eps), eps) and torch.equal(times[:, :1].expand_as(times), times)
        assert alike == shared
        assert not torch.equal(eps[0], eps[1])  # groups still differ


def test_rollout_noise_renoises_each_sample_with_the_noise_it_was_drawn_from(small_config):
    from engine.algorithms import build_algorithm
    from engine.models import build_model
    from engine.models.base import VelocityRunner
    from engine.method.rollout import RolloutNoise

    outs = {}
    for how in ("fresh", "rollout"):
        cfg = small_config("algorithm.name=diffusionnft", f"algorithm.nft_noise={how}")
        model = build_model(cfg.model)
        cond = model.encode_prompts(cfg.training_prompts()[:2])
        outs[how] = build_algorithm(cfg).rollout(VelocityRunner(model, 64), cond, RolloutNoise.seeded(0, 0, 0, 2), 0)
    fresh, rollout = outs["fresh"].forward, outs["rollout"].forward
    assert torch.equal(fresh.x0, rollout.x0) and torch.equal(fresh.time_idx, rollout.time_idx)  # same draws
    start = RolloutNoise.seeded(0, 0, 0, 2).randn(4, *fresh.x0.shape[1:]).flatten(0, 1)  # the rollout's first draw
    assert torch.equal(rollout.eps, start[:, None].expand_as(rollout.eps))
    assert not torch.equal(fresh.eps, rollout.eps)


def test_rollout_noise_is_refused_where_it_cannot_apply(small_config):
    from engine.config import ConfigError

    with pytest.raises(ConfigError, match="nft_noise"):
        small_config("algorithm.name=dancegrpo", "algorithm.nft_noise=rollout")
    with pytest.raises(ConfigError, match="nft_noise"):
        small_config("algorithm.name=diffusionnft", "algorithm.nft_noise=rollout", "algorithm.nft_group_noise=true")


def test_the_kl_term_measures_the_velocity_against_the_adapter_disabled_model(small_config, tmp_path):
    cfg = small_config("algorithm.name=diffusionnft", "algorithm.kl_beta=0.1", "train.iterations=2",
                       "train.learning_rate=1e-2", "train.optimizer_step=per_iteration")
    first, second = Trainer(cfg, tmp_path).run(progress=False)
    assert first["kl"] == 0.0  # a fresh LoRA is the reference: nothing moved yet
    assert second["kl"] > 0


def test_the_ema_old_policy_lags_the_trained_weights_and_resumes_exactly(small_config, tmp_path):
    cfg = small_config("algorithm.name=diffusionnft", "algorithm.nft_old_decay=0.5", "train.iterations=4",
                       "train.checkpoint_every=2", "train.learning_rate=1e-2", "train.optimizer_step=per_iteration")
    trainer = Trainer(cfg, tmp_path / "straight")
    start = [p.detach().clone() for p in trainer.params]
    first = trainer.iteration(0)
    assert first["old_deviation_first"] == 0.0  # the old policy starts as the trained weights
    for old, p, p0 in zip(trainer.old_policy.weights, trainer.params, start):
        assert torch.allclose(old, 0.5 * p0 + 0.5 * p.detach())  # theta_old <- d theta_old + (1 - d) theta
    with trainer.acting():  # rollouts sample with the old policy; on exit the trained weights are back
        assert all(torch.equal(p, old) for p, old in zip(trainer.params, trainer.old_policy.weights))
    assert not any(torch.equal(p, old) for p, old in zip(trainer.params, trainer.old_policy.weights))
    straight = [first] + [trainer.iteration(it) for it in range(1, 4)]
    assert straight[1]["old_deviation_first"] > 0  # the loss contrasts against the lagging old policy

    interrupted = Trainer(cfg, tmp_path / "resumed")
    for it in range(3):  # the checkpoint after 2 (old policy included), then iteration 2 is lost
        interrupted.iteration(it)
    resumed = Trainer(cfg, tmp_path / "resumed", resume=True)
    for a, b in zip(straight[2:], resumed.run(progress=False), strict=True):
        assert (a["loss"], a["old_deviation_first"], a["reward"]) == (b["loss"], b["old_deviation_first"], b["reward"])


def test_the_ema_old_policy_is_diffusionnft_only(small_config):
    from engine.config import ConfigError

    with pytest.raises(ConfigError, match="only DiffusionNFT keeps an old policy"):
        small_config("algorithm.nft_old_decay=0.5")


def test_without_negatives_the_worse_half_of_a_group_is_not_pushed(small_config):
    from engine.algorithms import build_algorithm
    from engine.models import build_model
    from engine.models.base import VelocityRunner
    from engine.method.rollout import RolloutNoise

    cfg = small_config("algorithm.name=diffusionnft", "algorithm.nft_negatives=false")
    model = build_model(cfg.model)
    algorithm = build_algorithm(cfg)
    out = algorithm.rollout(VelocityRunner(model, 64), model.encode_prompts(cfg.training_prompts()[:2]),
                            RolloutNoise.seeded(0, 0, 0, 2), 0)
    rewards = torch.arange(8.0)[None]  # two groups of 4, each with a worse and a better half
    algorithm.advantages(out, rewards, torch.ones(1))
    r = out.forward.optimality.reshape(2, 4)
    assert torch.equal(r[:, :2], torch.full((2, 2), 0.5)) and (r[:, 2:] > 0.5).all()
