"""E-GRPO: G²RPO's rollout with merged SDE steps. How a merged step is taken and trained, where its
completion starts, how its advantages are normalised, and the checks every method passes."""
import pytest
import torch

from engine.algorithms import build_algorithm
from engine.config import ConfigError
from engine.config.estimate import evaluations
from engine.models import build_model
from engine.models.base import VelocityRunner
from engine.method.rollout import RolloutNoise
from engine.method.sampling import gaussian_logprob, sde_mean, sde_std
from engine.training.trainer import Trainer

MERGED = ["algorithm.name=egrpo", "algorithm.branch_steps=[0,1,3]", "algorithm.merge_steps=[1,2,3]"]


def rollout(cfg, prompts=2):
    model = build_model(cfg.model)
    runner = VelocityRunner(model, 64)
    cond = model.encode_prompts(cfg.training_prompts()[:prompts])
    algorithm = build_algorithm(cfg)
    return algorithm, runner, cond, algorithm.rollout(runner, cond, RolloutNoise.seeded(0, 0, 0, prompts), 0)


def test_a_merged_step_spans_its_grid_steps_with_the_noise_of_its_start(small_config):
    cfg = small_config(*MERGED)
    algorithm, runner, cond, out = rollout(cfg)
    grid, sigmas = algorithm.grid, algorithm.sigmas
    assert [(t.step, t.span) for t in out.transitions] == [(0, 1), (1, 2), (3, 3)]
    for t in out.transitions:
        with torch.no_grad():
            v = runner(t.x, grid[t.step].expand(len(t.x)), cond, t.cond_idx)[t.member_state]
        x = t.x[t.member_state]
        s, s_next, sigma = grid[t.step], grid[t.step + t.span], sigmas[t.step]
        mean, std = sde_mean(x, v, s, s_next, sigma), sde_std(x, s, s_next, sigma)
        assert torch.allclose(gaussian_logprob(t.x_next, mean, std), t.logp_old, atol=1e-5)
        # the injected noise is sigma_k sqrt(s_k - s_{k+m}): one draw for the whole merged span
        z = (t.x_next - mean) / std
        assert 0.8 < z.std().item() < 1.2


def test_merged_branches_are_completed_from_where_they_land(small_config):
    """With (almost) no noise, a merged branch is one Euler step s_k -> s_{k+m} from the anchor, then
    the ODE: so its image is the plain ODE of the anchor with steps k .. k+m-1 taken as one."""
    cfg = small_config(*MERGED, "algorithm.eta=1e-12", "algorithm.granularities=[1]")
    algorithm, runner, cond, out = rollout(cfg, prompts=1)
    grid, T = algorithm.grid, cfg.sampling.steps
    model, rows = runner.model, torch.arange(1)
    images = out.images.reshape(3, 4, *out.images.shape[1:])  # (K, G): all members alike without noise
    for i, (k, m) in enumerate([(0, 1), (1, 2), (3, 3)]):
        x = RolloutNoise.seeded(0, 0, 0, 1).randn(*model.latent_shape)
        points = list(range(k + 1)) + list(range(k + m, T + 1))  # skip k+1 .. k+m-1
        with torch.no_grad():
            for a, b in zip(points, points[1:]):
                x = x - (grid[a] - grid[b]) * runner(x, grid[a].expand(1), cond, rows)
        assert torch.allclose(images[i], model.decode(x).expand_as(images[i]), atol=1e-4), (k, m)


def test_all_spans_one_is_g2rpo(small_config):
    ones = rollout(small_config("algorithm.name=egrpo", "algorithm.merge_steps=[1,1,1,1]"))[3]
    plain = rollout(small_config())[3]
    assert torch.equal(ones.images, plain.images)


def test_advantages_are_normalised_within_each_merged_step(small_config):
    cfg = small_config(*MERGED, "algorithm.granularities=[1]", "algorithm.adv_clamp=100")
    algorithm, _, _, out = rollout(cfg)
    rewards = torch.rand(1, out.images.shape[0], generator=torch.Generator().manual_seed(0))
    algorithm.advantages(out, rewards, torch.ones(1))
    per_group = rewards.reshape(3, 2, 4)  # (K, P, G)
    for i, t in enumerate(out.transitions):
        adv = t.advantage.reshape(2, 4)
        assert torch.allclose(adv.mean(1), torch.zeros(2), atol=1e-5)
        r = per_group[i]
        assert torch.allclose(adv, (r - r.mean(1, keepdim=True)) / r.std(1, keepdim=True), atol=1e-3)


@pytest.mark.parametrize("overrides, message", [
    (["algorithm.merge_steps=[1,2,1,1]"], "merged steps are E-GRPO"),
    (["algorithm.name=egrpo", "algorithm.merge_steps=[1,2]"], "one span per branch step"),
    (["algorithm.name=egrpo", "algorithm.branch_steps=[0,6]", "algorithm.merge_steps=[1,3]"], "past s = 0"),
])
def test_bad_merges_are_refused_before_a_run(small_config, overrides, message):
    with pytest.raises(ConfigError, match=message):
        small_config(*overrides)


def test_every_ratio_is_exactly_one_on_policy_and_evaluations_are_counted(small_config, tmp_path):
    # one optimizer step per iteration: every merged step is trained at the rollout policy, so its
    # log-probability must be recomputed over the same span, bit for bit (uneven chunks of 3)
    cfg = small_config(*MERGED, "train.micro_batch=3", "train.iterations=1", "train.optimizer_step=per_iteration",
                       "train.movement_probe=0")
    record = Trainer(cfg, tmp_path).iteration(0)
    assert record["ratio_min"] == record["ratio_max"] == 1.0
    assert record["g2rpo"]["merge_steps"] == [1, 2, 3]  # the heatmap labels the merged spans
    assert list(evaluations(cfg)) == [record["model_evaluations"]["rollout"], record["model_evaluations"]["train"]]


def test_resume_continues_exactly(small_config, tmp_path):
    cfg = small_config(*MERGED, "train.iterations=3", "train.checkpoint_every=2")
    straight = Trainer(cfg, tmp_path / "straight").run(progress=False)
    interrupted = Trainer(cfg, tmp_path / "resumed")
    interrupted.iteration(0)
    interrupted.iteration(1)
    again = Trainer(cfg, tmp_path / "resumed", resume=True).run(progress=False)
    assert [r["loss"] for r in straight[2:]] == [r["loss"] for r in again]
    assert straight[2]["reward"] == again[0]["reward"]
