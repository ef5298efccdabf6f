"""engine.tools.gradient_snr: the signal fraction of gradient estimates, and the CLI on a tiny model."""
import json

import pytest
import torch

from engine.tools.gradient_snr import main, signal_fraction
from tests.conftest import PROMPTS


def test_identical_estimates_are_all_signal_and_independent_noise_is_none():
    g = torch.randn(1, 5000, dtype=torch.float64)
    assert signal_fraction(g.expand(4, -1))["signal_fraction"] == pytest.approx(1.0)
    noise = torch.randn(8, 5000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert abs(signal_fraction(noise)["signal_fraction"]) < 0.02


def test_the_fraction_is_the_share_of_the_squared_gradient_that_is_its_mean():
    gen = torch.Generator().manual_seed(1)
    mu = torch.randn(20000, dtype=torch.float64, generator=gen)
    grads = mu + 2 * torch.randn(6, 20000, dtype=torch.float64, generator=gen)  # |mu|^2 : E|n|^2 = 1 : 4
    out = signal_fraction(grads)
    assert out["signal_fraction"] == pytest.approx(0.2, abs=0.02)
    assert out["mean_cosine"] == pytest.approx(0.2, abs=0.02)


@pytest.mark.parametrize("algorithm", ["g2rpo", "diffusionnft"])
def test_the_cli_measures_each_algorithms_update(algorithm, capsys):
    overrides = ["model.name=tiny-flux", "rewards=[{name: brightness}]", f"prompts={PROMPTS}", f"algorithm.name={algorithm}",
                 "algorithm.group_size=4", "algorithm.branch_steps=[0,1]", "algorithm.granularities=[1]",
                 "sampling.steps=4", "train.prompts_per_iteration=2", "train.optimizer_step=per_step"]
    assert main(["--config", "configs/g2rpo.yaml", "--estimates", "3", *sum((["--set", o] for o in overrides), [])]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert -1 <= out["signal_fraction"] <= 1 and out["signal_fraction"] != 0
    assert out["estimates"] == 3 and "brightness" in out["reward"]
