"""The pictures of a run (engine.report) and the settings sweep (engine.sweep) end to end."""
import json

import pytest
import yaml
from PIL import Image

from engine import report, sweep

TINY_BUILTIN = ["algorithm.name=diffusionnft", "algorithm.group_size=2", "train.prompts_per_iteration=1",
                "train.iterations=2", "train.checkpoint_every=1", "train.sample_every=1000", "train.eval_every=0",
                "train.learning_rate=3e-2", "train.movement_probe=2"]


def test_report_draws_base_against_the_runs_lora_and_its_curves(tmp_path):
    from engine import train

    args = ["--config", "configs/diffusionnft.yaml", "--out", str(tmp_path / "run"), "--no-progress"]
    assert train.main(args + [a for item in TINY_BUILTIN for a in ("--set", item)]) == 0
    assert report.main(["--run", str(tmp_path / "run"), "--out", str(tmp_path / "pictures"), "--seeds", "1"]) == 0
    for name in ("grid.png", "curves.png"):
        with Image.open(tmp_path / "pictures" / name) as image:
            assert image.width > 600 and image.height > 200
    assert report.main(["--run", str(tmp_path / "nothing-here")]) == 2  # a clear refusal, nothing drawn


@pytest.mark.slow  # about 2 minutes: three scorings of every held-out and training prompt
def test_a_sweep_trains_scores_resumes_and_writes_its_table(tmp_path):
    plan = {"base": "configs/diffusionnft.yaml", "iterations": 1, "eval_seeds": 1, "checkpoint_every": 1,
            "set": TINY_BUILTIN[:3], "entries": [{"name": "centre", "set": []},
                                                 {"name": "lr-1e-4", "set": ["train.learning_rate=1.0e-4"]}]}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    out = tmp_path / "sweep"
    assert sweep.main(["--plan", str(path), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in results["runs"]] == ["centre", "lr-1e-4"]
    table = (out / "table.md").read_text()
    assert "| base |" in table and "| centre |" in table and "`train.learning_rate=1.0e-4`" in table
    scored = (out / "centre" / "result.json").stat().st_mtime
    assert sweep.main(["--plan", str(path), "--out", str(out), "--only", "centre"]) == 0
    assert (out / "centre" / "result.json").stat().st_mtime == scored  # finished and scored: not redone
    assert sweep.main(["--plan", str(path), "--out", str(out), "--only", "nope"]) == 2


@pytest.mark.parametrize("plan", ["configs/sweep.yaml", "configs/sweep-nft.yaml", "configs/sweep-g2rpo.yaml"])
def test_every_committed_sweep_entry_is_a_valid_config(plan):
    """A sweep validates every entry before training; a committed plan must pass that check, and the G²RPO
    plan's entries keep the paper's method (settings only: SSS with the spec's completions and MGAI)."""
    loaded = sweep.load_plan(plan)
    for entry in loaded["entries"]:
        cfg = sweep.entry_config(loaded, entry)
        assert cfg.train.iterations == loaded["iterations"]
        if plan.endswith("g2rpo.yaml"):
            assert cfg.algorithm.name == "g2rpo" and set(cfg.algorithm.branch_steps) <= set(range(8))
