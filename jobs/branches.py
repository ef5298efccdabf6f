"""The branch explorer's read side: which iterations kept their branches, and one (iteration, prompt, k)
group's members, ranked by mixed advantage, with their images at every λ and their numbers.

The trainer writes the store (engine/training/branches.py describes its layout). Nothing here imports torch:
the UI process reads it with numpy and PIL. Bad choices raise BranchError with a one-line message.
"""
from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from engine.training.branches import NUMBERS, iteration_dir, mosaic_name, stored_iterations
from jobs import settings


class BranchError(ValueError):
    """A choice the store cannot answer: an iteration, prompt or k it does not hold."""


def run_folder(run_id: int) -> Path:
    return settings.run_dir(run_id)


def iterations(run_dir: Path) -> list[int]:
    """The iterations of the run whose branches are stored, ascending."""
    return stored_iterations(run_dir)


def numbers(run_dir: Path, iteration: int) -> dict:
    """A stored iteration's arrays (float64) and its `meta` (prompts, names, K, Λ, tile, format)."""
    path = iteration_dir(run_dir, iteration) / NUMBERS
    if not path.is_file():
        stored = iterations(run_dir)
        which = ", ".join(map(str, stored[-12:])) if stored else "none yet"
        raise BranchError(f"iteration {iteration} has no stored branches (stored: {which})")
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {key: data[key].astype(np.float64) for key in data.files if key != "meta"}
            out["meta"] = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise BranchError(f"iteration {iteration}: its stored numbers cannot be read ({type(err).__name__})") from None
    return out


def _value(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def ranking(mixed: np.ndarray) -> list[int]:
    """Members from the highest mixed advantage to the lowest (ties: the lower member first; a
    non-finite advantage last)."""
    key = [(-x if math.isfinite(x) else math.inf, i) for i, x in enumerate(np.asarray(mixed, dtype=np.float64))]
    return [i for _, i in sorted(key)]


def group(run_dir: Path, iteration: int, prompt: int, k: int) -> dict:
    """One group's members ranked by mixed advantage: {"iteration", "prompt", "prompt_index", "k",
    "granularities", "rewards" (names), "components" (names), "members": [{"member", "mixed",
    "components": {name: value}, "finishes": [{"granularity", "image" (PIL, RGB), "rewards":
    {name: value}, "z": {name: value}}, one per λ]}]}. Values are None where not finite."""
    data = numbers(run_dir, iteration)
    meta = data["meta"]
    prompts, steps, lambdas = meta["prompts"], meta["branch_steps"], meta["granularities"]
    if not 0 <= prompt < len(prompts):
        raise BranchError(f"no prompt {prompt} at iteration {iteration}: it kept prompts 0–{len(prompts) - 1}")
    if k not in steps:
        raise BranchError(f"k = {k} is not a branch step of this run ({', '.join(map(str, steps))})")
    ki, L = steps.index(k), len(lambdas)
    mosaic = _mosaic(run_dir, iteration, prompt, meta["format"])
    height, width = meta["tile"]
    rewards, z = data["rewards"][:, prompt, ki], data["advantages"][:, prompt, ki]  # [M, L, G]
    components = data.get("components")
    members = []
    for member in ranking(data["mixed"][prompt, ki]):
        finishes = []
        for li, lam in enumerate(lambdas):
            top, left = (ki * L + li) * height, member * width
            finishes.append({"granularity": lam, "image": mosaic.crop((left, top, left + width, top + height)),
                             "rewards": {n: _value(rewards[m, li, member]) for m, n in enumerate(meta["rewards"])},
                             "z": {n: _value(z[m, li, member]) for m, n in enumerate(meta["rewards"])}})
        members.append({"member": member, "mixed": _value(data["mixed"][prompt, ki, member]), "finishes": finishes,
                        "components": {} if components is None else
                        {n: _value(components[c, prompt, ki, member]) for c, n in enumerate(meta["components"])}})
    return {"iteration": iteration, "prompt": prompts[prompt], "prompt_index": prompt, "k": k,
            "granularities": lambdas, "rewards": meta["rewards"], "components": meta["components"],
            "members": members}


def _mosaic(run_dir: Path, iteration: int, prompt: int, kind: str):
    from PIL import Image

    path = iteration_dir(run_dir, iteration) / mosaic_name(prompt, kind)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError:  # another process of a data-parallel run has not written it yet, or it was deleted
        raise BranchError(f"iteration {iteration}: the images of prompt {prompt} are not stored") from None
