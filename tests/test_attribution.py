"""The attribution instrument (engine/attribution/__init__.py): its shares, its intervals, its CLI."""
import json

import numpy as np
import pytest
import torch

from engine import attribution
from engine.algorithms import build_algorithm
from engine.config import load_config
from engine.models.base import FlowModel
from engine.method.sampling import sde_std


class StillFlow(FlowModel):
    """A toy model whose velocity is 0: the ODE leaves a latent where it is, so a branch's final latent
    is the anchor's x_k moved by the SDE step's shared mean plus the noise injected at k, and nothing else."""

    def __init__(self):
        super().__init__()
        self.transformer = torch.nn.Linear(1, 1)  # unused: where the engine looks for the device

    @property
    def latent_shape(self):
        return (3, 2, 2)

    def encode_prompts(self, prompts):
        return {"rows": torch.zeros(len(prompts), 1)}

    def velocity(self, x, s, cond):
        return torch.zeros_like(x)

    def decode(self, x):
        return x


def latent_mean(images, prompts):
    """A reward that reads every element alike: the mean of the 12 latent elements."""
    return {"mean": images.flatten(1).mean(1)}


def toy_config(group=16):
    return load_config("configs/g2rpo.yaml", [f"algorithm.group_size={group}", "algorithm.granularities=[1]",
                                              "train.micro_batch=256"])


def test_shares_over_steps_sum_to_one_for_every_reward_and_every_resample():
    rng = np.random.default_rng(0)
    variance = rng.gamma(2.0, 1.0, size=(20, 8)) * rng.uniform(0.1, 3, size=8)
    assert attribution.shares(variance).sum() == pytest.approx(1.0)
    weights = attribution.resampling_weights(20, 500)
    means = weights @ variance
    assert np.allclose((means / means.sum(1, keepdims=True)).sum(1), 1.0)
    interval = attribution.share_interval(variance, weights)
    assert np.all(interval["low"] <= interval["value"]) and np.all(interval["value"] <= interval["high"])
    # a reward that never varies has no share (not a division by zero spread over the steps)
    assert np.isnan(attribution.shares(np.zeros((5, 8)))).all()


def test_a_reward_moved_by_one_steps_noise_only_puts_all_its_share_there():
    """Noise injected at step 3 only (the other steps' sigma set to 0): every other branch's members
    are identical, so step 3 carries exactly 100% and the others 0%."""
    cfg = toy_config()
    algorithm = build_algorithm(cfg)
    only = 3
    algorithm.sigmas = torch.where(torch.arange(len(algorithm.sigmas)) == only, algorithm.sigmas, torch.zeros(()))
    prompts = [f"p{i}" for i in range(6)]
    measured = attribution.measure(StillFlow(), cfg, prompts, latent_mean, progress=False, algorithm=algorithm)
    report = attribution.summarize(measured, draws=200)
    shares = report["shares"]["mean"]
    assert shares[str(only)] == {"value": 1.0, "low": 1.0, "high": 1.0}
    assert all(shares[str(k)]["value"] == 0.0 for k in report["branch_steps"] if k != only)


def test_shares_match_the_hand_computed_injected_variance():
    """With v = 0 a member's final latent is shared + std_k * eps, so the variance of the latent's mean
    at k is std_k^2 / 12 (std_k = sigma_k sqrt(Delta_k), the spec's .700 .723 .517 ...) and from
    independent initial noises 1 / 12: share_k = std_k^2 / sum std^2, relative_k = std_k^2."""
    cfg = toy_config()
    algorithm = build_algorithm(cfg)
    K = sorted(cfg.algorithm.branch_steps)
    std = torch.stack([sde_std(torch.zeros(1, 1), algorithm.grid[k], algorithm.grid[k + 1], algorithm.sigmas[k]).reshape(())
                       for k in K]).double().numpy()
    assert std[:3] == pytest.approx([0.700, 0.723, 0.517], abs=1e-3)
    expected_share = std**2 / (std**2).sum()
    measured = attribution.measure(StillFlow(), cfg, [f"p{i}" for i in range(64)], latent_mean, progress=False)
    report = attribution.summarize(measured, draws=1000)
    for i, k in enumerate(K):
        share, relative = report["shares"]["mean"][str(k)], report["relative_to_independent"]["mean"][str(k)]
        assert share["low"] <= expected_share[i] <= share["high"], (k, share, expected_share[i])
        assert share["value"] == pytest.approx(expected_share[i], rel=0.2)
        assert relative["low"] <= std[i] ** 2 <= relative["high"], (k, relative, std[i] ** 2)
    assert report["independent_variance"]["mean"]["value"] == pytest.approx(1 / 12, rel=0.15)


def test_share_intervals_cover_the_true_share_about_95_percent_of_the_time():
    """A known sample: per prompt, the group variance at k is true_k times a prompt's own scale (shared
    over k, lognormal) times chi-square noise of G - 1 = 7 degrees of freedom. The true share is
    true_k / sum(true). Over 400 samples of 40 prompts the 95% intervals must cover it 90-99% of the time."""
    rng = np.random.default_rng(1)
    true = np.array([0.5, 1.0, 2.0, 1.5, 1.0, 0.6, 0.3, 0.1])
    target = true / true.sum()
    covered = []
    weights = attribution.resampling_weights(40, 1000, seed=2)
    for _ in range(400):
        scale = rng.lognormal(0.0, 0.7, size=(40, 1))
        variance = true * scale * rng.chisquare(7, size=(40, 8)) / 7
        interval = attribution.share_interval(variance, weights)
        covered.append((interval["low"] <= target) & (target <= interval["high"]))
    coverage = np.mean(covered)
    assert 0.90 <= coverage <= 0.99, coverage


def test_the_cli_measures_the_built_in_model_per_verifier_and_writes_json_and_png(tmp_path):
    out, png = tmp_path / "out.json", tmp_path / "out.png"
    code = attribution.main(["--prompts", "2", "--set", "algorithm.group_size=3", "--set", "algorithm.branch_steps=[0,4]",
                             "--draws", "200", "--json", str(out), "--png", str(png)])
    assert code == 0
    report = json.loads(out.read_text())
    assert list(report["shares"]) == ["adherence", "background", "colour", "shape", "count"]
    assert report["branch_steps"] == [0, 4] and report["granularity"] == 1 and report["prompts"] == 2
    for name, per_step in report["shares"].items():
        values = [v["value"] for v in per_step.values()]
        if None not in values:
            assert sum(values) == pytest.approx(1.0), name
        for v in per_step.values():
            if v["value"] is not None:
                assert v["low"] - 1e-9 <= v["value"] <= v["high"] + 1e-9
    assert png.stat().st_size > 10_000


def test_the_cli_refuses_a_config_that_does_not_branch_and_a_bad_lora(tmp_path, capsys):
    assert attribution.main(["--config", "configs/diffusionnft.yaml", "--prompts", "2"]) == 2
    assert "samples as G²RPO does" in capsys.readouterr().err
    assert attribution.main(["--lora", str(tmp_path), "--prompts", "2"]) == 2
    assert "no pytorch_lora_weights.safetensors" in capsys.readouterr().err
    assert attribution.main(["--prompts", "100000"]) == 2
    assert "--prompts: 1 to" in capsys.readouterr().err
