"""The spec's checks on advantages and the clipped loss."""
import pytest
import torch

from engine.method.objective import clipped_policy_loss, gaussian_kl, group_advantages, integrate_advantages


def test_equal_rewards_give_zero_advantage_not_nan():
    for value in (0.3, 1e6, -2.7, 0.0):
        adv = group_advantages(torch.full((2, 12), value, dtype=torch.float32))
        assert torch.equal(adv, torch.zeros(2, 12))


def test_advantages_are_z_scores_with_unbiased_std():
    r = torch.tensor([[1.0, 2.0, 3.0, 6.0]])
    expected = (r - r.mean()) / (r.std(unbiased=True) + 1e-8)
    assert torch.allclose(group_advantages(r), expected, atol=1e-6)
    adv = group_advantages(torch.randn(5, 12))
    assert torch.allclose(adv.mean(-1), torch.zeros(5), atol=1e-6)
    assert torch.allclose(adv.std(-1), torch.ones(5), atol=1e-5)


def test_global_std_replaces_the_group_std():
    r = torch.tensor([[1.0, 3.0], [10.0, 30.0]])
    adv = group_advantages(r, global_std=torch.tensor(2.0))
    assert torch.allclose(adv, torch.tensor([[-0.5, 0.5], [-5.0, 5.0]]), atol=1e-6)


def test_integration_sums_over_granularities_and_rewards_then_clamps():
    # [M = 2 rewards, L = 2 granularities, G = 3 members]
    per = torch.tensor([[[1.0, -1.0, 0.0], [2.0, 0.5, -3.0]], [[0.5, 0.5, 0.0], [4.0, -1.0, -3.0]]])
    mixed = integrate_advantages(per, torch.ones(2), clamp=5.0)
    assert mixed.tolist() == [5.0, -1.0, -5.0]  # raw sums 7.5, -1.0, -6.0
    weighted = integrate_advantages(per, torch.tensor([1.0, 0.0]), clamp=5.0)
    assert weighted.tolist() == [3.0, -0.5, -3.0]


def test_clipped_loss_matches_ppo_on_hand_made_values():
    eps = 0.2
    ratio = torch.tensor([1.5, 0.5, 1.1, 0.9, 1.5, 0.5])
    adv = torch.tensor([1.0, 1.0, 2.0, -1.0, -1.0, -1.0])
    # max(-A r, -A clip(r)): A>0 caps the gain above 1+eps; A<0 caps it below 1-eps
    expected = torch.tensor([-1.2, -0.5, -2.2, 0.9, 1.5, 0.8])
    assert torch.allclose(clipped_policy_loss(ratio, adv, eps), expected)


def test_gaussian_kl():
    mean = torch.randn(3, 4, 2)
    assert torch.equal(gaussian_kl(mean, mean, torch.tensor(0.5)), torch.zeros(3))
    ref = mean + 0.1
    assert torch.allclose(gaussian_kl(mean, ref, torch.tensor(0.5)), torch.full((3,), 0.01 / 0.5), atol=1e-6)


@pytest.mark.parametrize("shape", [(12,), (3, 8, 12)])
def test_advantage_shapes_are_kept(shape):
    assert group_advantages(torch.randn(shape)).shape == shape
