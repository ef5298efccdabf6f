"""The CLI: bad configs are rejected before any work (exit 2, nothing written); a run works end to end."""
import json
import subprocess
import sys

import pytest

from engine.config import ConfigError, load_config
from engine.train import main

SMALL = ["--set", "model.name=tiny-flux", "--set", "rewards=[{name: brightness}]", "--set", "algorithm.group_size=3", "--set", "algorithm.branch_steps=[0,1]", "--set", "sampling.steps=6",
         "--set", "train.iterations=2", "--set", "algorithm.granularities=[1,2]", "--set", "train.prompts_per_iteration=1"]


@pytest.mark.parametrize("override, message", [
    ("algorithm.granularities=[0,1]", "every granularity must be >= 1"),
    ("algorithm.granularities=[]", "Lambda must not be empty"),
    ("algorithm.branch_steps=[0,16]", "beyond the grid"),
    ("algorithm.group_size=1", "at least 2 members"),
    ("train.learning_rate=-1", "learning_rate: must be > 0"),
    ("train.learning_rate=fast", "expected float"),
    ("algorithm.group_size=2.5", "expected int"),
    ("algorithm.bogus=1", "unknown key(s) algorithm.bogus"),
    ("rewards=[{name: nope}]", "unknown reward 'nope'"),
    ("prompts=['a red zebra']", "unknown word(s) 'zebra'"),
    ("prompts=['']", "empty prompt"),
    ("algorithm.name=ppo", "unknown algorithm"),
    ("train.optimizer_step=sometimes", "optimizer_step"),
])
def test_bad_config_exits_2_and_writes_nothing(tmp_path, capsys, override, message):
    out = tmp_path / "run"
    assert main(["--config", "configs/g2rpo.yaml", "--out", str(out), "--set", override]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_every_problem_is_listed_at_once():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.learning_rate=-1", "algorithm.granularities=[0]", "algorithm.group_size=1"])
    assert str(err.value).count("\n  - ") == 3


def test_overrides_are_typed():
    cfg = load_config("configs/g2rpo.yaml", ["algorithm.granularities=[1,3]", "train.learning_rate=1e-3",
                                             "lora.enabled=false", "train.micro_batch=7"])
    assert cfg.algorithm.granularities == [1, 3] and cfg.train.learning_rate == 1e-3
    assert cfg.lora.enabled is False and cfg.train.micro_batch == 7


def test_algorithm_defaults_are_resolved():
    dance = load_config("configs/dancegrpo.yaml")
    assert (dance.algorithm.eta, dance.algorithm.noise_form, dance.algorithm.shared_noise) == (0.3, "dance", True)
    flow = load_config("configs/flowgrpo.yaml")
    assert (flow.algorithm.eta, flow.algorithm.noise_form, flow.algorithm.shared_noise) == (0.7, "flow", False)


def test_cli_trains_resumes_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "engine.train", "--config", "configs/g2rpo.yaml", "--out", str(out), *SMALL]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "100%" in done.stderr  # the progress bar
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [0, 1]
    assert (out / "config.yaml").exists() and (out / "checkpoints" / "iter_000002").exists()

    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr

    longer = subprocess.run([sys.executable, "-m", "engine.train", "--out", str(out), "--resume",
                             "--set", "train.iterations=3", "--no-progress"], capture_output=True, text=True)
    assert longer.returncode == 0, longer.stderr
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [0, 1, 2]


def test_resume_without_a_run_is_refused(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "nothing"), "--resume"]) == 2
    assert "no run to resume" in capsys.readouterr().err
