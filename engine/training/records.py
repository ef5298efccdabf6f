"""Where per-iteration records go. This file writes JSON Lines; the job storage is another sink."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image


class RecordSink(Protocol):
    def write(self, record: dict) -> None: ...


class JsonlSink:
    """Appends one JSON object per iteration to a file, flushed at once (readers may tail it).

    On resume from iteration n, records of iterations >= n (written after the checkpoint the run
    resumes from) are dropped first, so no iteration is ever recorded twice.
    """

    def __init__(self, path: Path, start_iteration: int = 0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("iteration", -1) < start_iteration]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def non_finite(value, path: str = "") -> list[str]:
    """Where in a record (nested dicts and lists) a float is NaN or inf: ["policy_movement", ...]."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path or "a value"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite(v, f"{path}.{k}".lstrip("."))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite(v, f"{path}[{i}]")]
    return []


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def save_images(images: torch.Tensor, folder: Path, names: list[str]) -> list[Path]:
    """Write float [B, 3, H, W] images in [0, 1] as PNG files; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = (images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    paths = []
    for array, name in zip(arrays, names):
        path = folder / name
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths
