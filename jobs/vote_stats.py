"""What a blind A/B test's votes say: model A's win rate over model B with 95% intervals, the same
per prompt attribute of the built-in world, and how often the voters agreed with each reward.

Ties ("same") count as half a win for each model: win rate = (A's wins + ties / 2) / votes, so 0.5
means no preference either way. Two 95% intervals:
- Wilson's score interval with every vote a trial (a tie half a success): good with few votes, but
  it takes votes as independent;
- a bootstrap over prompts (2,000 resamples, seed 0): prompts drawn with replacement, each with all
  its votes (every seed, every voter), so votes on one prompt count as the correlated evidence they
  are; it is wider when prompts disagree, and undefined with a single prompt.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

Z95 = 1.959963984540054
RESAMPLES = 2000
ATTRIBUTES = ("colour", "background", "shape", "count")
POINTS = {"a": 1.0, "b": 0.0, "same": 0.5}


def wilson(wins: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a rate of wins / n (nan, nan with no trials)."""
    if n == 0:
        return math.nan, math.nan
    p, z2 = wins / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_over_prompts(votes: list[dict], resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """The 2.5% and 97.5% percentiles of the win rate over prompts resampled with their votes."""
    by_prompt: dict[str, list[float]] = defaultdict(list)
    for v in votes:
        by_prompt[v["prompt"]].append(POINTS[v["winner"]])
    if len(by_prompt) < 2:
        return math.nan, math.nan
    sums = np.array([sum(p) for p in by_prompt.values()])
    counts = np.array([len(p) for p in by_prompt.values()])
    picks = np.random.default_rng(seed).integers(0, len(sums), size=(resamples, len(sums)))
    rates = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = np.percentile(rates, [2.5, 97.5])
    return float(low), float(high)


def from_counts(a: int, b: int, same: int) -> dict:
    """Counts, A's win rate and its Wilson interval."""
    n, wins = a + b + same, a + same / 2
    return {"votes": n, "a": a, "b": b, "same": same, "rate": wins / n if n else math.nan, "wilson": wilson(wins, n)}


def tally(votes: list[dict], bootstrap: bool = True) -> dict:
    """Counts, A's win rate and its intervals."""
    counts = {w: sum(v["winner"] == w for v in votes) for w in POINTS}
    return {**from_counts(**counts),
            "bootstrap": bootstrap_over_prompts(votes) if bootstrap else (math.nan, math.nan)}


def by_attribute(votes: list[dict]) -> list[tuple[str, str, dict]]:
    """(attribute, value, tally) for each colour, background, shape and count the prompts name
    (prompts of the built-in world; others are left out)."""
    from engine.world import parse_prompt

    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for v in votes:
        try:
            spec = parse_prompt(v["prompt"])
        except ValueError:
            continue
        for attribute in ATTRIBUTES:
            groups[(attribute, str(getattr(spec, attribute)))].append(v)
    order = {a: i for i, a in enumerate(ATTRIBUTES)}
    return [(attribute, value, tally(group, bootstrap=False))
            for (attribute, value), group in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))]


def agreement(votes: list[dict]) -> list[dict]:
    """Per reward scored with the pairs: of the votes that picked a side (not "same") on a pair the
    reward told apart (different scores), how many picked the image the reward scored higher."""
    names = list(dict.fromkeys(name for v in votes for name in (v.get("scores") or {})))
    rows = []
    for name in names:
        decisive = [v for v in votes if v["winner"] in ("a", "b") and name in (v.get("scores") or {})]
        told = [v for v in decisive if abs(v["scores"][name][0] - v["scores"][name][1]) > 1e-9]
        agreed = sum((v["scores"][name][0] > v["scores"][name][1]) == (v["winner"] == "a") for v in told)
        rows.append({"reward": name, "decisive": len(decisive), "told_apart": len(told), "agreed": agreed,
                     "rate": agreed / len(told) if told else math.nan})
    return rows
