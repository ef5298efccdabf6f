"""The branch explorer's store: the images G²RPO's branches produced, with their rewards and advantages.

Every `train.branch_every` iterations, from iteration 0 (the base model's rollout), a branching run
(G²RPO, E-GRPO) keeps the completed images of every member at every (prompt, k, λ) in its folder:

    branches/iter_000010/prompt_0003.png   one mosaic per prompt: a row per (k, λ), K-major, a column
                                           per member (in member order, as the record numbers them)
    branches/iter_000010/numbers.npz       the iteration's numbers, written last (its presence marks
                                           the iteration complete)

numbers.npz holds float32 `rewards` and `advantages` (the z-scores) [reward][prompt][k][λ][member],
`mixed` [prompt][k][member] and, on the built-in world, `components` [component][prompt][k][member]
(the verifier scores at the finest λ), all as the iteration's record has them (engine/algorithms/g2rpo.py),
and `meta`, a JSON string: iteration, prompts, reward and component names, K, Λ, tile size, format.

Images at most SMALL_SIDE pixels a side (the built-in model's 32x32) are kept as they are, in a
lossless PNG; larger ones (real models) are reduced to THUMB_SIDE and kept as JPEG. Only the first
MAX_PROMPTS prompts of the global batch are kept, so an iteration costs at most
MAX_PROMPTS x |K| x |Λ| x G tiles whatever the batch (sizes measured in docs/scale.md).
Under data parallel every process writes the mosaics of the prompts it owns, the main one the numbers.

No torch at import: the jobs side (jobs/branches.py) reads the layout from here in the UI process.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

FOLDER = "branches"
NUMBERS = "numbers.npz"
MAX_PROMPTS = 4  # prompts kept per stored iteration: the default preset's whole batch
SMALL_SIDE = 64  # images up to this side are kept as they are (PNG)
THUMB_SIDE = 128  # larger images are reduced to this side (JPEG)
JPEG_QUALITY = 85
ITERATION = re.compile(r"iter_(\d{6,})")


def iteration_dir(run_dir: Path, iteration: int) -> Path:
    return Path(run_dir) / FOLDER / f"iter_{iteration:06d}"


def mosaic_name(prompt: int, kind: str) -> str:
    return f"prompt_{prompt:04d}.{kind}"


def stored_iterations(run_dir: Path) -> list[int]:
    """The iterations whose branches are stored whole (their numbers written), ascending."""
    folder = Path(run_dir) / FOLDER
    if not folder.is_dir():
        return []
    found = (ITERATION.fullmatch(p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in found if m and (folder / m.group(0) / NUMBERS).is_file())


def tile_of(height: int, width: int) -> tuple[tuple[int, int], str]:
    """The stored tile (height, width) and format of an image of this size."""
    if max(height, width) <= SMALL_SIDE:
        return (height, width), "png"
    scale = THUMB_SIDE / max(height, width)
    return (max(1, round(height * scale)), max(1, round(width * scale))), "jpg"


def _replace(path: Path, write) -> None:
    """Write through a temporary file, then rename: a reader never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    write(temporary)
    os.replace(temporary, path)


class BranchWriter:
    """Keeps a branching run's branches every `every` iterations (0: never) under `run_dir`."""

    def __init__(self, run_dir: Path, every: int, reward_names: list[str], is_main: bool, start_iteration: int = 0):
        self.run_dir, self.every, self.reward_names, self.is_main = Path(run_dir), every, reward_names, is_main
        if is_main:  # a resumed run redoes these iterations (a new one all of them): drop what they kept
            for it in stored_iterations(self.run_dir):
                if it >= start_iteration:
                    shutil.rmtree(iteration_dir(self.run_dir, it), ignore_errors=True)

    def due(self, iteration: int) -> bool:
        return self.every > 0 and iteration % self.every == 0

    def write(self, iteration: int, images, groups: tuple[int, ...], first: int, batch: list[str], g2rpo: dict) -> None:
        """Keep iteration's branches. `images`: this process's rollout images [L*K*P*G, 3, H, W] in
        [0, 1], ordered (λ, k, prompt, member) as `groups` (L, K, P, G) says; `first`: the global
        index of its first prompt; `batch`: the global batch's prompts; `g2rpo`: the record's entry."""
        L, K, P, G = groups
        folder = iteration_dir(self.run_dir, iteration)
        folder.mkdir(parents=True, exist_ok=True)
        (height, width), kind = tile_of(*images.shape[-2:])
        kept = [p for p in range(P) if first + p < MAX_PROMPTS]
        if kept:
            tiles = self._tiles(images.reshape(L, K, P, G, *images.shape[1:])[:, :, kept], (height, width))
            for i, p in enumerate(kept):  # [L, K, G, h, w, 3] -> rows (k, λ), columns members
                mosaic = tiles[:, :, i].transpose(1, 0, 3, 2, 4, 5).reshape(K * L * height, G * width, 3)
                self._save(mosaic, folder / mosaic_name(first + p, kind), kind)
        if self.is_main:
            self._save_numbers(folder, iteration, batch, g2rpo, (height, width), kind)

    @staticmethod
    def _tiles(images, size: tuple[int, int]) -> np.ndarray:
        """uint8 [..., h, w, 3] tiles of float images [..., 3, H, W], reduced (antialiased) where larger."""
        import torch
        import torch.nn.functional as F

        lead = images.shape[:-3]
        flat = images.detach().float().reshape(-1, *images.shape[-3:])
        if tuple(flat.shape[-2:]) != size:
            flat = F.interpolate(flat, size=size, mode="bilinear", antialias=True, align_corners=False)
        pixels = (flat.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        return pixels.cpu().numpy().reshape(*lead, *size, 3)

    @staticmethod
    def _save(mosaic: np.ndarray, path: Path, kind: str) -> None:
        from PIL import Image

        image = Image.fromarray(mosaic)
        if kind == "png":
            _replace(path, lambda p: image.save(p, format="PNG", optimize=True))
        else:
            _replace(path, lambda p: image.save(p, format="JPEG", quality=JPEG_QUALITY))

    def _save_numbers(self, folder: Path, iteration: int, batch: list[str], g: dict, tile, kind: str) -> None:
        n = min(len(batch), MAX_PROMPTS)
        arrays = {"rewards": np.array(g["rewards"], dtype=np.float32)[:, :n],
                  "advantages": np.array(g["advantages"], dtype=np.float32)[:, :n],
                  "mixed": np.array(g["mixed_advantage"], dtype=np.float32)[:n]}
        if g.get("components") is not None:
            arrays["components"] = np.array(g["components"], dtype=np.float32)[:, :n]
        meta = {"iteration": iteration, "prompts": batch[:n], "rewards": self.reward_names,
                "components": g.get("component_names") or [], "branch_steps": g["branch_steps"],
                "granularities": g["granularities"], "tile": list(tile), "format": kind}
        arrays["meta"] = np.array(json.dumps(meta))

        def write(path: Path) -> None:
            with path.open("wb") as f:
                np.savez_compressed(f, **arrays)

        _replace(folder / NUMBERS, write)
