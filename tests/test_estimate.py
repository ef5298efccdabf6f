"""The estimate of a run's memory and time: model evaluations as the trainer counts them, the
refusal with the estimate in it, and (slow) a measured iteration against its estimate."""
import json
import subprocess
import sys

import pytest

from engine.config.estimate import budget_problems, estimate, evaluations
from engine.training.trainer import Trainer
from jobs.testing import REPO, one_torch_thread


@pytest.mark.parametrize("name", ["g2rpo", "dancegrpo", "flowgrpo", "mixgrpo", "diffusionnft"])
def test_model_evaluations_are_those_the_trainer_counts(small_config, tmp_path, name):
    cfg = small_config(f"algorithm.name={name}", "train.iterations=1", "train.movement_probe=0")
    with one_torch_thread():
        counted = Trainer(cfg, tmp_path).iteration(0)["model_evaluations"]
    rollout, train = evaluations(cfg)
    assert rollout == counted["rollout"]
    if name in ("g2rpo", "flowgrpo", "diffusionnft"):
        assert train == counted["train"]
    else:  # a step trained from the members' shared first state costs 1 evaluation, not G: an upper bound
        assert counted["train"] <= train <= counted["train"] + cfg.algorithm.group_size * cfg.train.prompts_per_iteration


def test_a_run_the_machine_cannot_hold_is_refused_with_its_estimate(small_config, monkeypatch):
    cfg = small_config("algorithm.group_size=48")
    assert budget_problems(cfg) == []
    monkeypatch.setenv("G2RPO_WORKER_MEMORY_GB", "0.2")
    monkeypatch.setenv("G2RPO_MAX_RUN_HOURS", "0.00001")
    memory, time = budget_problems(cfg)
    assert memory.startswith(f"estimated {estimate(cfg).describe()}: more memory than the 0.2 GB")
    assert "longer than 1e-05 h (G2RPO_MAX_RUN_HOURS)" in time


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [["model.name=builtin", "algorithm.group_size=24"],
                                       ["model.name=builtin", "algorithm.name=flowgrpo", "algorithm.group_size=24"]])
def test_a_measured_iteration_stays_within_its_estimate(overrides):
    done = subprocess.run([sys.executable, "-m", "engine.tools.measure", *sum((["--set", o] for o in overrides), [])],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["peak_gb"] <= measured["estimated_gb"] <= 1.6 * measured["peak_gb"], measured
