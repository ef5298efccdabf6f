"""Experiment trackers (TensorBoard, Weights & Biases, Trackio) through accelerate's tracker API.

`train.log_with` names them; the trainer's Accelerator is made with `log_with` and a project folder
(the run folder's `trackers/`), `init_trackers` gets the run's config, and every record is logged as
it is stored: the same scalars the records and the database hold, the held-out evaluations, and the
sample images. The step is the number of iterations the policy had been trained for: an
iteration's rollout statistics, loss and gradient norm at its index, an evaluation or a sample
grid "after n iterations" at n (the base model's at 0).

Nothing here imports torch or a tracker at import time: the config's validation and the UI use
`problems` and `locations`.
"""
from __future__ import annotations

import importlib.util
import json
import os
import secrets
from pathlib import Path

TRACKERS = ("tensorboard", "wandb", "trackio")
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}
FOLDER = "trackers"  # in the run folder: TensorBoard's events, W&B's run files, the run's tracker identity
IDENTITY = "run.json"
# Record keys that are not per-iteration scalars: lists, the attribution arrays, paths, evaluations.
NOT_SCALARS = {"iteration", "prompts", "g2rpo", "trained_steps", "samples", "base_samples", "checkpoint",
               "evaluation", "base_evaluation"}


def problems(names: list[str]) -> list[str]:
    """Why the trackers named cannot run here (a package missing), one line each."""
    return [f"train.log_with: {name!r} needs the {PACKAGES[name]} package: pip install -r requirements-trackers.txt "
            f"(or pip install {PACKAGES[name]})" for name in names if importlib.util.find_spec(PACKAGES[name]) is None]


def scalars(record: dict, weights: dict[str, float]) -> dict[str, float]:
    """An iteration's numbers as flat tracker tags: every numeric value of the record outside
    NOT_SCALARS (`loss`, `reward/<name>/mean`, `time/rollout`, `model_evaluations/train`, ...) and
    `reward/total`, the weighted sum of the reward means the database's `reward` column holds."""
    out = {}

    def walk(value, key):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}/{k}" if key else k)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = value

    walk({k: v for k, v in record.items() if k not in NOT_SCALARS}, "")
    out["reward/total"] = sum(weights.get(name, 1.0) * v["mean"] for name, v in record["reward"].items())
    return out


def evaluations(record: dict) -> list[tuple[int, dict[str, float]]]:
    """(step, {"eval/<reward>": score}) of the record's evaluations: the base model's, then the new one."""
    return [(e["trained"], {f"eval/{name}": score for name, score in e["scores"].items()})
            for e in (record.get("base_evaluation"), record.get("evaluation")) if e]


def flat_config(config: dict, prefix: str = "") -> dict:
    """The config as `section.key` -> bool, int, float, str or None (what TensorBoard's hparams
    take); lists become their JSON text."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_config(value, name + "."))
        elif isinstance(value, list):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def identity(out_dir: Path, base_name: str) -> dict:
    """The run's name and id at the trackers, kept in the run folder so a resumed run continues
    the same W&B and Trackio run instead of starting a new one. A fresh run gets a random id, so
    two run folders with the same name never share a tracker run."""
    path = Path(out_dir) / FOLDER / IDENTITY
    if path.exists():
        return json.loads(path.read_text())
    run_id = secrets.token_hex(4)
    found = {"name": f"{base_name}-{run_id}", "id": run_id}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(found))
    return found


def init_kwargs(names: list[str], out_dir: Path, run: dict) -> dict:
    """accelerate's per-tracker init arguments: W&B writes under the run folder and resumes by id;
    Trackio resumes by name (its files are in TRACKIO_DIR: `trackio_dir`)."""
    kwargs = {}
    if "wandb" in names:
        kwargs["wandb"] = {"dir": str(Path(out_dir) / FOLDER), "name": run["name"], "id": run["id"], "resume": "allow"}
    if "trackio" in names:
        kwargs["trackio"] = {"name": run["name"], "resume": "allow"}
    return kwargs


def trackio_dir() -> Path:
    """Where Trackio keeps its projects (trackio.utils.TRACKIO_DIR, without importing trackio)."""
    if os.environ.get("TRACKIO_DIR"):
        return Path(os.environ["TRACKIO_DIR"])
    from huggingface_hub.constants import HF_HOME

    return Path(HF_HOME) / "trackio"


def locations(config: dict, run_folder: str | Path) -> list[str]:
    """Where a run's trackers keep it, one line per tracker, with the command that shows it."""
    t = config.get("train", {})
    names, project = t.get("log_with") or [], t.get("tracker_project", "g2rpo")
    folder = Path(run_folder) / FOLDER
    path = folder / IDENTITY
    run = json.loads(path.read_text())["name"] if path.exists() else "(named when the run starts)"
    lines = []
    for name in names:
        if name == "tensorboard":
            lines.append(f"TensorBoard: `{folder / project}` (`tensorboard --logdir {folder}`)")
        elif name == "wandb":
            lines.append(f"W&B: project `{project}`, run `{run}`; files in `{folder / 'wandb'}` "
                         f"(offline runs: `wandb sync {folder / 'wandb'}/offline-run-*`)")
        elif name == "trackio":
            lines.append(f"Trackio: project `{project}`, run `{run}` in `{trackio_dir()}` "
                         f"(`trackio show --project {project}`)")
    return lines


class Tracking:
    """The trainer's trackers: started with the run's config, fed every record, finished at the end.
    A no-op without `train.log_with`. Only the main process writes (accelerate's trackers see to it)."""

    def __init__(self, accelerator, config: dict, out_dir: Path, base_name: str):
        self.accelerator, self.out_dir = accelerator, Path(out_dir)
        t = config["train"]
        self.names, self.weights = list(t["log_with"]), {r["name"]: r["weight"] for r in config["rewards"]}
        self.sample_prompts = config["sample_prompts"]
        if not self.names:
            return
        missing = problems(self.names)
        if missing:
            from engine.config.fields import ConfigError

            raise ConfigError.listing(missing)
        run = identity(self.out_dir, base_name) if accelerator.is_main_process else {"name": base_name, "id": ""}
        accelerator.init_trackers(t["tracker_project"], config=flat_config(config),
                                  init_kwargs=init_kwargs(self.names, self.out_dir, run))

    def log(self, record: dict) -> None:
        """The record's scalars, evaluations and sample images, each at its step."""
        if not self.names:
            return
        acc, it = self.accelerator, record["iteration"]
        if record.get("base_samples"):
            self.images(record["base_samples"], 0)
        for step, scores in evaluations(record):  # the base model's (step 0) comes before iteration 0's scalars
            if step == 0:
                acc.log(scores, step=0)
        acc.log(scalars(record, self.weights), step=it)
        for step, scores in evaluations(record):
            if step > 0:
                acc.log(scores, step=step)
        if record.get("samples"):
            self.images(record["samples"], it + 1)

    def images(self, paths: list[str], step: int) -> None:
        """A sample grid, from the PNG files the record names, in each tracker's image type."""
        if not self.accelerator.is_main_process:
            return
        import numpy as np
        from PIL import Image

        pictures = [np.asarray(Image.open(self.out_dir / p).convert("RGB")) for p in paths]
        captions = [self.sample_prompts[i] if i < len(self.sample_prompts) else "" for i in range(len(paths))]
        for name in self.names:
            tracker = self.accelerator.get_tracker(name, unwrap=True)  # the writer or run itself
            if name == "tensorboard":
                tracker.add_images("samples", np.stack(pictures), global_step=step, dataformats="NHWC")
                tracker.flush()
            elif name == "wandb":
                import wandb

                tracker.log({"samples": [wandb.Image(p, caption=c) for p, c in zip(pictures, captions)]}, step=step)
            elif name == "trackio":
                import trackio

                tracker.log({f"samples/{i:02d}": trackio.Image(p, caption=c)
                             for i, (p, c) in enumerate(zip(pictures, captions))}, step=step)

    def finish(self, completed: bool) -> None:
        """Close the trackers: accelerate's end_training when the run completed (every process
        there), else each tracker's finish on its own (no barrier a failed process never reaches)."""
        if not self.names:
            return
        if completed:
            self.accelerator.end_training()
        else:
            for tracker in self.accelerator.trackers:
                tracker.finish()
