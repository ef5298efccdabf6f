"""Runs fail loudly: a run that goes NaN stops naming the iteration and the last good checkpoint
(nothing non-finite is recorded, in the run folder or the database), and a corrupt checkpoint is
named on resume, which falls back to the newest intact one."""
import math
import subprocess
import sys

import pytest

from engine.training.checkpoint import CHECKSUMS, TRAINABLE, TRAINING_STATE, checkpoints
from engine.training.errors import CheckpointError, NonFiniteError
from engine.training.records import read_records
from engine.training.trainer import Trainer
from jobs import api, db, runs
from jobs.testing import REPO, SMALL, one_torch_thread

# Valid but absurd: a LoRA scale of 1e15 / rank, no clipping, lr 1. The first update blows the weights up
# and the next iteration's images (so its rewards) are NaN: a real divergence, not an injected one.
# (Without the movement probe: it would see the blown-up policy at the end of iteration 0, below.)
# One optimizer step per iteration, so iteration 0 itself ends finite whatever the preset's schedule.
EXPLODING = ["train.learning_rate=1", "train.max_grad_norm=1e30", "lora.alpha=1e15", "train.movement_probe=0",
             "train.optimizer_step=per_iteration"]


def small(small_config, *extra):
    return small_config("train.iterations=4", "train.checkpoint_every=1", "train.prompts_per_iteration=1", *extra)


def all_finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(all_finite(v) for v in value)
    return True


def test_a_run_that_goes_non_finite_stops_naming_the_iteration_and_the_last_good_checkpoint(small_config, tmp_path):
    cfg = small(small_config, *EXPLODING)
    with one_torch_thread(), pytest.raises(NonFiniteError) as err:
        Trainer(cfg, tmp_path).run(progress=False)
    message = str(err.value)
    records = read_records(tmp_path / "records.jsonl")
    failed = len(records)  # the iteration that went non-finite was not recorded
    assert f"iteration {failed}: " in message and "is not finite" in message
    assert f"the last good checkpoint (all finite) is checkpoints/iter_{failed:06d}" in message
    assert records and all(all_finite(r) for r in records)
    assert checkpoints(tmp_path)[-1].name == f"iter_{failed:06d}"  # no checkpoint of the failed iteration


def test_a_non_finite_diagnostic_stops_the_run_too_and_drops_the_iterations_checkpoint(small_config, tmp_path):
    cfg = small(small_config, *EXPLODING, "train.movement_probe=4")
    with one_torch_thread(), pytest.raises(NonFiniteError) as err:
        Trainer(cfg, tmp_path).run(progress=False)
    assert str(err.value).startswith("iteration 0: policy_movement is not finite")
    assert "no checkpoint was saved before it" in str(err.value)
    assert checkpoints(tmp_path) == [] and not (tmp_path / "records.jsonl").exists()


def test_a_non_finite_job_fails_with_that_line_and_keeps_its_metrics(tmp_path, monkeypatch):
    """Through the worker's own job body (a real training child process), not the trainer alone."""
    from jobs import supervise

    monkeypatch.setenv("G2RPO_DATA_DIR", str(tmp_path))
    for var in ("G2RPO_DATABASE_URL", "G2RPO_QUEUE_URL"):
        monkeypatch.delenv(var, raising=False)
    try:
        config = api.check_config("configs/g2rpo.yaml", SMALL + EXPLODING + ["train.iterations=6", "train.eval_every=0",
                                                                           "train.checkpoint_every=1"])
        run_id = runs.create(config)
        supervise.execute(run_id)  # claims the queued run, trains it in a child, records the outcome
        run = api.get_run(run_id)
        assert run["status"] == "failed", run["error"]
        assert run["error"].startswith("iteration ") and "is not finite" in run["error"]
        assert "Traceback" not in run["error"] and "\n" not in run["error"]
        metrics = api.latest_metrics(run_id)
        assert metrics and all(m["loss"] is not None and m["reward"] is not None for m in metrics)
        assert f"checkpoints/iter_{len(metrics):06d}" in run["error"]
    finally:
        db.dispose_all()


def corrupt(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_corrupt_latest_checkpoint_is_named_and_resume_falls_back_to_the_newest_intact_one(
        small_config, tmp_path, capsys):
    cfg = small(small_config, "train.iterations=3")
    with one_torch_thread():
        straight = Trainer(cfg, tmp_path / "straight").run(progress=False)
        Trainer(cfg, tmp_path / "run").run(progress=False)
        corrupt(tmp_path / "run" / "checkpoints" / "iter_000003" / TRAINABLE)
        resumed = Trainer(cfg, tmp_path / "run", resume=True)
        said = capsys.readouterr().out
        assert (f"checkpoint checkpoints/iter_000003 ({TRAINABLE} does not match its checksum) is corrupt; "
                "resuming from checkpoints/iter_000002, the newest intact one") in said
        assert resumed.start_iteration == 2
        again = resumed.run(progress=False)
    assert again[0]["loss"] == straight[2]["loss"]  # the fallback resumes exactly

    (tmp_path / "run" / "checkpoints" / "iter_000003" / TRAINING_STATE).write_bytes(b"truncated")
    for folder in checkpoints(tmp_path / "run")[:-1]:
        corrupt(folder / TRAINING_STATE)
    with pytest.raises(CheckpointError) as err:
        Trainer(cfg, tmp_path / "run", resume=True)
    assert "no checkpoint of" in str(err.value) and "iter_000001" in str(err.value)
    assert f"{TRAINING_STATE} has 9 bytes" in str(err.value)


def test_a_checkpoint_from_before_checksums_is_checked_by_loading_it(small_config, tmp_path, capsys):
    cfg = small(small_config, "train.iterations=2")
    with one_torch_thread():
        Trainer(cfg, tmp_path).run(progress=False)
        for folder in checkpoints(tmp_path):
            (folder / CHECKSUMS).unlink()
        state = checkpoints(tmp_path)[-1] / TRAINING_STATE
        state.write_bytes(state.read_bytes()[:100])  # truncated, as a full disk leaves it
        assert Trainer(cfg, tmp_path, resume=True).start_iteration == 1
    assert "iter_000002 (cannot be loaded" in capsys.readouterr().out


def test_the_cli_says_so_in_one_line_with_its_exit_codes(tmp_path):
    out = tmp_path / "run"
    base = [sys.executable, "-m", "engine.train", "--config", "configs/g2rpo.yaml", "--out", str(out), "--no-progress",
            *sum((["--set", o] for o in SMALL + EXPLODING + ["train.iterations=6", "train.checkpoint_every=1",
                                                           "train.eval_every=0"]), [])]
    done = subprocess.run(base, cwd=REPO, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1",
                                                                                "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "is not finite" in done.stderr.strip().splitlines()[-1]
    for folder in checkpoints(out):
        corrupt(folder / TRAINABLE)
    done = subprocess.run([sys.executable, "-m", "engine.train", "--out", str(out), "--resume"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no checkpoint of" in done.stderr
