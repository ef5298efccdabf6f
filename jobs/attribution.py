"""G²RPO's per-member arrays as float32 blobs, and the per-step summary the step x iteration view draws.

A record's `g2rpo` arrays are nested lists: rewards and advantages [reward model][prompt][k][λ][member],
mixed_advantage [prompt][k][member]. They are stored as one row per iteration: the three arrays as
little-endian float32 in C order, one after the other, zlib-compressed into one blob, with the
shape in columns. The engine computes them in float32 (rewards, z-scores and their mix are float32
tensors), so float32 loses nothing. A default run (K=8, Λ=3, G=12, one prompt) has 2,688 bytes of
them an iteration instead of 20 KB of JSON; zlib leaves 93% of uniform noise (the benchmark's fake
records) and 36% of a built-in-model E-GRPO run's arrays (exact zeros of equal groups, rewards
that vary in few digits). A non-finite value (None in a stored record) is NaN in a blob and None
again when read. Where the record has the built-in world's verifier components of every member
(`components` [component][prompt][k][member] at the finest λ, named by `component_names`, which
stays in the record), they follow in the same blob: their count is what is left of it divided by
prompts x steps x members, so blobs written before them read as they always did (no migration).

The summary is computed here once per iteration, when the record is stored, from the float64
values: per branch step, averaged over the iteration's prompts, the mean |mixed advantage| over
members (where the learning signal sits), the std over members of the weighted reward at the
finest granularity (how much the noise injected at k moves the reward) and the mean Pearson
correlation between the granularities' advantages (whether they agree). `variances` gives, per
reward model and per verifier component, the mean over prompts of the members' variance at the
finest granularity per step: bucket means of it are a window's pooled variance, from which the
Monitor draws each step's share of the variance (engine/attribution/__init__.py defines the share).
"""
from __future__ import annotations

import zlib

import numpy as np

BLOB = np.dtype("<f4")
ARRAYS = ("rewards", "advantages", "mixed_advantage")
SHAPE = ("models", "prompts", "steps", "granularities", "members")  # the attributions row's shape columns
SUMMARY = ("abs_advantage", "reward_std", "agreement")


def as_array(nested) -> np.ndarray:
    """Nested lists (None: NaN) as a float64 array."""
    return np.array(nested, dtype=np.float64)


def as_lists(array: np.ndarray) -> list:
    """A float array as nested lists, NaN as None (how a stored record spells a non-finite value)."""
    missing = np.isnan(array)
    if not missing.any():
        return array.tolist()
    out = array.astype(object)
    out[missing] = None
    return out.tolist()


def _shapes(models: int, prompts: int, steps: int, granularities: int, members: int) -> dict[str, tuple]:
    full = (models, prompts, steps, granularities, members)
    return {"rewards": full, "advantages": full, "mixed_advantage": (prompts, steps, members)}


def row(run_id: int, iteration: int, g: dict) -> dict:
    """The attributions row of a record's `g2rpo` entry (its arrays as one blob, their shape as columns)."""
    arrays = {key: as_array(g[key]) for key in ARRAYS}
    shape = dict(zip(SHAPE, arrays["rewards"].shape))
    for key, expected in _shapes(**shape).items():
        if arrays[key].shape != expected:
            raise ValueError(f"g2rpo {key}: shape {arrays[key].shape}, expected {expected}")
    parts = [arrays[key] for key in ARRAYS]
    if g.get("components") is not None:
        components = as_array(g["components"])
        if components.shape[1:] != (shape["prompts"], shape["steps"], shape["members"]):
            raise ValueError(f"g2rpo components: shape {components.shape}, expected [C, P, K, G] of the rewards' P, K, G")
        parts.append(components)
    blob = zlib.compress(b"".join(part.astype(BLOB).tobytes() for part in parts))
    return dict(run_id=run_id, iteration=iteration, **shape, arrays=blob)


def arrays(stored) -> dict[str, list]:
    """The nested lists again from an attributions row (an object or a mapping with its columns)."""
    get = stored.get if isinstance(stored, dict) else lambda key: getattr(stored, key)
    flat, out, at = np.frombuffer(zlib.decompress(get("arrays")), BLOB).astype(np.float64), {}, 0
    for key, shape in _shapes(**{key: get(key) for key in SHAPE}).items():
        size = int(np.prod(shape))
        out[key] = as_lists(flat[at:at + size].reshape(shape))
        at += size
    if at < len(flat):  # the members' verifier components follow
        out["components"] = as_lists(flat[at:].reshape(-1, get("prompts"), get("steps"), get("members")))
    return out


def _mean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over `axis` of the finite values, NaN where there are none (no warning)."""
    known = np.isfinite(values)
    count = known.sum(axis)
    total = np.where(known, values, 0.0).sum(axis)
    return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


def _std(values: np.ndarray) -> np.ndarray:
    """Sample std (n - 1) over the last axis of the finite values; NaN below two values."""
    known = np.isfinite(values)
    count = known.sum(-1)
    mean = _mean(values, -1)
    squares = np.where(known, (values - mean[..., None]) ** 2, 0.0).sum(-1)
    return np.sqrt(np.divide(squares, count - 1, out=np.full(count.shape, np.nan), where=count >= 2))


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation over the last axis, over members where both are finite; NaN below two
    such members or where either is constant (no correlation is defined then)."""
    both = np.isfinite(a) & np.isfinite(b)
    a, b = np.where(both, a, np.nan), np.where(both, b, np.nan)

    def spread(x):  # max - min over the known members: exactly 0 for a constant vector
        return np.where(both, x, -np.inf).max(-1) - np.where(both, x, np.inf).min(-1)

    defined = (both.sum(-1) >= 2) & (spread(a) > 0) & (spread(b) > 0)
    da, db = a - _mean(a, -1)[..., None], b - _mean(b, -1)[..., None]  # NaN where not both: nansum skips
    cov, norm = np.nansum(da * db, -1), np.sqrt(np.nansum(da * da, -1) * np.nansum(db * db, -1))
    return np.divide(cov, norm, out=np.full(cov.shape, np.nan), where=defined & (norm > 0))


def reward_spread(rewards: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The std over members (sample, n - 1) of the weighted reward: rewards [M, ..., G] -> [...]."""
    return _std(np.tensordot(np.asarray(weights, dtype=np.float64), rewards, axes=1))


def summary(g: dict, weights: list[float]) -> dict[str, np.ndarray]:
    """Per branch step (in g's order), averaged over prompts: {abs_advantage, reward_std, agreement},
    each a float64 array [K] (NaN where undefined). `weights`: the reward models' weights."""
    rewards, advantages, mixed = (as_array(g[key]) for key in ARRAYS)  # [M,P,K,Λ,G] twice, [P,K,G]
    finest = g["granularities"].index(min(g["granularities"]))
    total = np.tensordot(np.asarray(weights, dtype=np.float64), rewards[:, :, :, finest], axes=1)  # [P,K,G]
    lambdas = advantages.shape[3]
    pairs = [_correlation(advantages[:, :, :, i], advantages[:, :, :, j])  # each [M,P,K]
             for i in range(lambdas) for j in range(i + 1, lambdas)]
    if pairs:  # the mean over every (reward model, pair of granularities) with a correlation
        stacked = np.moveaxis(np.stack(pairs, -1), 0, -1)  # [P,K,pairs,M]
        agreement = _mean(stacked.reshape(*stacked.shape[:2], -1), -1)
    else:
        agreement = np.full(total.shape[:2], np.nan)
    per_prompt = {"abs_advantage": _mean(np.abs(mixed), -1), "reward_std": _std(total), "agreement": agreement}
    return {key: _mean(value, 0) for key, value in per_prompt.items()}


def _group_variance(values: np.ndarray) -> np.ndarray:
    """The members' sample variance (n - 1) over the last axis, NaN below two finite values."""
    return _std(values) ** 2


def variances(g: dict, reward_names: list[str]) -> dict[str, np.ndarray]:
    """Per reward model, then per verifier component not already a reward: the mean over prompts of
    the group's variance (members at the finest λ) per branch step, {name: float64 [K]}."""
    rewards = as_array(g["rewards"])  # [M, P, K, Λ, G]
    finest = g["granularities"].index(min(g["granularities"]))
    out = {name: _mean(_group_variance(rewards[m, :, :, finest]), 0) for m, name in enumerate(reward_names)}
    if g.get("components") is not None:
        components = as_array(g["components"])  # [C, P, K, G]
        for c, name in enumerate(g.get("component_names") or []):
            if name not in out:
                out[name] = _mean(_group_variance(components[c]), 0)
    return out
