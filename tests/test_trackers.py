"""Experiment trackers through accelerate: what TensorBoard, W&B (offline) and Trackio (local) hold,
read back with each tracker's own reader, equals the records and the database."""
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from engine.config import ConfigError, load_config
from engine.training.records import read_records
from engine.training.tracking import FOLDER, flat_config
from jobs import queries, runs, settings
from jobs.testing import REPO, SMALL, one_torch_thread

RUN = SMALL + ["train.iterations=3", "train.sample_every=2", "train.checkpoint_every=1000"]


def f32(value: float) -> float:
    return float(np.float32(value))  # TensorBoard stores scalars as float32


def test_tensorboard_holds_the_databases_scalars_evaluations_samples_and_config(store):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from jobs import child

    cfg = load_config("configs/g2rpo.yaml", RUN + ["train.log_with=tensorboard"])
    run_id = runs.create(cfg.to_dict())
    with one_torch_thread():
        child.train(run_id)
    folder = settings.run_dir(run_id) / FOLDER / "g2rpo"
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    events.Reload()

    def series(tag):
        return [(e.step, e.value) for e in events.Scalars(tag)]

    metrics = queries.latest_metrics(run_id)
    assert [m["iteration"] for m in metrics] == [0, 1, 2]
    assert series("loss") == [(m["iteration"], f32(m["loss"])) for m in metrics]
    assert series("grad_norm") == [(m["iteration"], f32(m["grad_norm"])) for m in metrics]
    assert series("reward/total") == [(m["iteration"], f32(m["reward"])) for m in metrics]
    assert series("reward/brightness/mean") == [(m["iteration"], f32(m["rewards"]["brightness"]["mean"]))
                                                for m in metrics]
    records = queries.records(run_id)
    for key in ("learning_rate", "policy_movement", "approx_kl", "onpolicy_ratio_error"):
        assert series(key) == [(r["iteration"], f32(r[key])) for r in records], key
    assert series("model_evaluations/rollout") == [(r["iteration"], r["model_evaluations"]["rollout"]) for r in records]
    assert series("time/total") == [(r["iteration"], f32(r["time"]["total"])) for r in records]
    evaluations = queries.evaluations(run_id)  # the base model's (0 iterations), then after each iteration
    for name in ("brightness", "saturation"):
        assert series(f"eval/{name}") == [(e["trained"], f32(e["scores"][name])) for e in evaluations]
    assert [e.step for e in events.Images("samples")] == sorted({s["trained"] for s in queries.samples(run_id)})
    (hparams,) = folder.glob("*/hparams.yml")  # accelerate's copy of the config TensorBoard got
    assert yaml.safe_load(hparams.read_text()) == flat_config(runs.get(run_id).config)

    from app.runs_tab import selection

    about = selection(run_id)[0]  # the run page says where the tracker keeps the run, with its folder redacted
    assert f"TensorBoard: `<run>/{FOLDER}/g2rpo`" in about and f"tensorboard --logdir <run>/{FOLDER}`" in about
    assert str(settings.data_dir()) not in about


def test_a_missing_tracker_package_is_refused_before_the_run(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.log_with=[tensorboard, wandb]"])
    (problem,) = err.value.by_field()["train.log_with"]
    assert "'wandb' needs the wandb package" in problem and "pip install" in problem
    with pytest.raises(ConfigError, match="unknown tracker 'mlflow'"):
        load_config(None, ["train.log_with=mlflow"])
    assert load_config(None, ["train.log_with=none"]).train.log_with == []


OFFLINE = ("wandb", "trackio")


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    """One `python -m engine.train` run logging to W&B (offline) and Trackio (local), those of them
    installed, in its own process (trackers keep global state). Yields (run folder, records, env)."""
    import importlib.util

    installed = [name for name in OFFLINE if importlib.util.find_spec(name) is not None]
    if not installed:
        pytest.skip("neither wandb nor trackio is installed (pip install -r requirements-trackers.txt)")
    tmp = tmp_path_factory.mktemp("offline-trackers")
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(tmp / "wandb-config"),
           "WANDB_CACHE_DIR": str(tmp / "wandb-cache"), "WANDB_DATA_DIR": str(tmp / "wandb-data"),
           "TRACKIO_DIR": str(tmp / "trackio"), "HF_HUB_OFFLINE": "1"}
    out = tmp / "run"
    overrides = [arg for o in RUN + [f"train.log_with={json.dumps(installed)}"] for arg in ("--set", o)]
    subprocess.run([sys.executable, "-m", "engine.train", "--config", "configs/g2rpo.yaml", "--out", str(out),
                    "--no-progress", *overrides], check=True, cwd=REPO, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **env})
    return out, read_records(out / "records.jsonl"), env


def expected_steps(records: list[dict]) -> dict[int, dict]:
    """Per step, what the trainer logs: an iteration's scalars at its index, evaluations at the
    iterations trained (the base model's at 0)."""
    steps: dict[int, dict] = {}
    for r in records:
        steps.setdefault(r["iteration"], {}).update({"loss": r["loss"], "grad_norm": r["grad_norm"],
                                                     "reward/brightness/mean": r["reward"]["brightness"]["mean"]})
        for key in ("base_evaluation", "evaluation"):
            e = r.get(key)
            if e:
                steps.setdefault(e["trained"], {}).update({f"eval/{n}": s for n, s in e["scores"].items()})
    return steps


def wandb_records(path: Path):
    """The records of a .wandb file, parsed with wandb's own protobuf schema. The file is a LevelDB
    log (a ':W&B' header, then 32 KiB blocks of chunks with 7-byte headers); wandb 0.31 ships no
    Python reader of it (wandb-core, in Go, reads it)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, block, pending = path.read_bytes(), 7, 32768, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def test_wandb_offline_holds_the_records_scalars_and_config(offline_run):
    pytest.importorskip("wandb", reason="wandb is not installed (pip install -r requirements-trackers.txt)")
    out, records, _ = offline_run
    (log,) = (out / FOLDER / "wandb").glob("offline-run-*/run-*.wandb")
    history, config = {}, {}
    for record in wandb_records(log):
        if record.HasField("history"):
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            history[row["_step"]] = row
        elif record.HasField("config"):
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
    assert sorted(history) == [0, 1, 2, 3]
    for step, values in expected_steps(records).items():
        assert {k: history[step][k] for k in values} == values, step  # JSON doubles: exact
    assert [s for s, row in history.items() if "samples/count" in row] == [0, 2, 3]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert {k: config[k] for k in flat_config(saved)} == flat_config(saved)


def test_trackio_locally_holds_the_records_scalars_and_config(offline_run):
    pytest.importorskip("trackio", reason="trackio is not installed (pip install -r requirements-trackers.txt)")
    out, records, env = offline_run
    name = json.loads((out / FOLDER / "run.json").read_text())["name"]
    read = ("import json, sys, trackio; from trackio.sqlite_storage import SQLiteStorage as S; "
            f"logs = S.get_logs('g2rpo', {name!r}); config = trackio.Api().runs('g2rpo')[0].config; "
            "print(json.dumps({'logs': logs, 'config': config}, default=str))")
    printed = subprocess.run([sys.executable, "-c", read], check=True, capture_output=True, text=True,
                             env={**os.environ, **env}).stdout
    found = json.loads(printed.splitlines()[-1])
    steps: dict[int, dict] = {}
    for row in found["logs"]:
        steps.setdefault(row["step"], {}).update(row)
    for step, values in expected_steps(records).items():
        assert {k: steps[step][k] for k in values} == values, step
    assert sorted(s for s, row in steps.items() if "samples/00" in row) == [0, 2, 3]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert {k: found["config"][k] for k in flat_config(saved)} == flat_config(saved)
