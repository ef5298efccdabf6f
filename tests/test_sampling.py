"""The spec's checks on the sampling math: grid, SDE step, log-prob, eta = 0, granular schedules."""
import math

import pytest
import torch

from engine.method.sampling import (completion_schedule, gaussian_logprob, noise_levels, ode_step, sde_mean, sde_std,
                             sde_step, sigma_grid)

SPEC_GRID = [1.0, .9783, .9545, .9286, .9, .8684, .8333, .7941, .75, .7, .6429, .5769, .5, .4091, .3, .1667, 0]


def test_shifted_grid_matches_the_spec():
    grid = sigma_grid(16, 3.0)
    assert grid.tolist() == pytest.approx(SPEC_GRID, abs=5e-5)
    assert (grid[:-1] > grid[1:]).all()


def test_injected_std_matches_the_spec_table():
    grid = sigma_grid(16, 3.0)
    sigmas = noise_levels(grid, 0.7, "flow")
    std = [float(sde_std(torch.zeros(1, 1), grid[k], grid[k + 1], sigmas[k])) for k in range(8)]
    assert std == pytest.approx([.700, .723, .517, .427, .373, .337, .310, .289], abs=6e-4)


def test_dance_form_uses_constant_eta():
    assert noise_levels(sigma_grid(16, 3.0), 0.3, "dance").tolist() == [0.3] * 16


def test_eta_zero_is_the_ode_step_exactly():
    grid = sigma_grid(16, 3.0).float()
    x, v = torch.randn(4, 8, 3), torch.randn(4, 8, 3)
    for i in range(16):
        x_next, _, mean = sde_step(x, v, grid[i], grid[i + 1], torch.tensor(0.0), torch.randn_like(x))
        assert torch.equal(x_next, ode_step(x, v, grid[i], grid[i + 1]))
        assert torch.equal(mean, ode_step(x, v, grid[i], grid[i + 1]))


def test_logprob_is_the_element_mean_of_the_analytic_density():
    grid = sigma_grid(16, 3.0).double()
    sigmas = noise_levels(grid, 0.7, "flow")
    x, v = torch.randn(3, 10, 4, dtype=torch.float64), torch.randn(3, 10, 4, dtype=torch.float64)
    for i in (0, 3, 9):
        x_next, logp, mean = sde_step(x, v, grid[i], grid[i + 1], sigmas[i], torch.randn_like(x))
        std = float(sigmas[i]) * math.sqrt(float(grid[i] - grid[i + 1]))
        expected = torch.distributions.Normal(mean, std).log_prob(x_next).flatten(1).mean(1)
        assert torch.allclose(logp.double(), expected, atol=1e-5)


def test_sde_mean_formula():
    x, v, s, s_next, sigma = torch.randn(2, 5), torch.randn(2, 5), 0.8, 0.7, 0.9
    expected = x - 0.1 * (v + sigma**2 / (2 * s) * (x + (1 - s) * v))
    assert torch.allclose(sde_mean(x, v, s, s_next, sigma), expected, atol=1e-6)


def test_per_sample_times_broadcast():
    grid = sigma_grid(16, 3.0).float()
    x, v = torch.randn(3, 4, 2), torch.randn(3, 4, 2)
    idx = torch.tensor([0, 5, 14])
    batched = ode_step(x, v, grid[idx], grid[idx + 1])
    for row, i in enumerate(idx.tolist()):
        assert torch.equal(batched[row], ode_step(x[row:row + 1], v[row:row + 1], grid[i], grid[i + 1])[0])


@pytest.mark.parametrize("steps", [16, 10])
def test_granular_schedules_match_the_spec_for_every_k_and_lambda(steps):
    grid = sigma_grid(steps, 3.0).tolist()
    for k in range(steps):
        for lam in range(1, 6):
            spec = (grid[0:k + 2] + grid[k + 2::lam])[k + 1:]  # s[0:k+2] ++ s[k+2::lam], from k + 1
            ours = [grid[i] for i in completion_schedule(k, lam, steps)]
            if spec[-1] != 0.0:  # strides stopped short of s = 0: we append the final step
                spec = spec + [0.0]
            assert ours == spec, (k, lam)


def test_final_step_to_zero_is_x0_hat():
    """An Euler step to s = 0 is x - s v: the x0_hat predicted at the point it starts from."""
    x, v, s = torch.randn(2, 6), torch.randn(2, 6), torch.tensor(0.1667)
    assert torch.equal(ode_step(x, v, s, torch.tensor(0.0)), x - s * v)


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError):
        completion_schedule(16, 1, 16)
    with pytest.raises(ValueError):
        completion_schedule(0, 0, 16)


def authors_run_ode_sample_step(velocity, x, sigmas, k):
    """A plain transcription of the authors' loop (bcmi/Granular-GRPO, run_ode_sample_step) on a
    schedule sigmas = s[0:k+2] ++ s[k+2::lam]: Euler from index k + 1, returning the x0_hat of
    the LAST loop iteration (at the second-to-last schedule point)."""
    for i in range(k + 1, len(sigmas) - 1):
        v = velocity(x, sigmas[i])
        x0_hat = x - sigmas[i] * v
        x = x + (sigmas[i + 1] - sigmas[i]) * v
    return x0_hat


def _engine_completion(velocity, x, k, lam, steps, end):
    from engine.method.rollout import integrate_ode

    grid = sigma_grid(steps, 3.0).double()
    runner = lambda x, s, cond, idx: velocity(x, s.reshape(-1, 1))  # noqa: E731 (a fake model)
    rows = torch.zeros(len(x), dtype=torch.long)
    return integrate_ode(runner, x, {}, rows, grid, [completion_schedule(k, lam, steps, end)] * len(x))


@pytest.mark.parametrize("steps", [16, 10])
def test_authors_completion_end_equals_their_loop(steps):
    """completion='authors' gives the image the authors' code returns, for every k and lambda; where
    the strides reach s = 0 it equals 'append_zero', elsewhere it is a different image."""
    weight = torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) / 3
    velocity = lambda x, s: torch.tanh(x @ weight) * (1 + s)  # noqa: E731 (depends on x and s, like a model)
    grid = sigma_grid(steps, 3.0).double()
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    differ = 0
    for k in range(steps - 2):
        for lam in (1, 2, 3):
            sigmas = torch.cat([grid[:k + 2], grid[k + 2::lam]])
            if k + 2 not in completion_schedule(k, lam, steps, "authors"):
                continue  # refused by the config check (the shared fine step would be skipped)
            theirs = authors_run_ode_sample_step(velocity, x, sigmas, k)
            ours = _engine_completion(velocity, x, k, lam, steps, "authors")
            assert torch.allclose(ours, theirs, atol=1e-12), (k, lam)
            appended = _engine_completion(velocity, x, k, lam, steps, "append_zero")
            if sigmas[-1] == 0:
                assert torch.equal(ours, appended), (k, lam)
            else:
                differ += 1
                assert not torch.allclose(ours, appended, atol=1e-6), (k, lam)
    assert differ > 0


def test_append_zero_end_is_x0_hat_at_the_last_strided_point():
    k, lam, steps = 0, 3, 16  # strides stop at s = .30
    weight = torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) / 3
    velocity = lambda x, s: torch.tanh(x @ weight) * (1 + s)  # noqa: E731
    grid = sigma_grid(steps, 3.0).double()
    x = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    sigmas = torch.cat([grid[:k + 2], grid[k + 2::lam], torch.zeros(1, dtype=torch.float64)])  # s = 0 appended
    assert torch.allclose(_engine_completion(velocity, x, k, lam, steps, "append_zero"),
                          authors_run_ode_sample_step(velocity, x, sigmas, k), atol=1e-12)


def test_authors_end_that_would_skip_the_shared_fine_step_is_refused():
    from engine.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="algorithm.completion"):
        load_config("configs/g2rpo.yaml", ["algorithm.completion=authors", "algorithm.branch_steps=[13]",
                                           "algorithm.granularities=[3]"])
    with pytest.raises(ConfigError, match="algorithm.completion"):
        load_config("configs/g2rpo.yaml", ["algorithm.completion=sideways"])
    load_config("configs/g2rpo.yaml", ["algorithm.completion=authors"])  # the paper's K and Lambda are fine
