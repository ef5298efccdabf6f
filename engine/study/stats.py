"""Intervals and verdicts for the study, written once: the expanded percentile bootstrap over seeds.

A method's score at a budget is one number per seed (each seed a whole training run). Its interval
resamples the seeds with replacement; a difference between two methods resamples each method's
seeds on its own (the seeds of two methods are independent runs, not pairs). A comparison's verdict
reads its interval: above 0 "better", below 0 "worse", straddling 0 "no difference detectable".

With 5 seeds a plain percentile bootstrap is far too narrow (about 0.6 of a t-interval's width: it
uses the seeds' spread with n, not n - 1, in the denominator and a normal, not a t, quantile), which
would turn seed noise into verdicts. So the percentiles are taken at the expanded levels of Hesterberg
("What teachers should know about the bootstrap", The American Statistician, 2015): the tail is
Phi(-sqrt(n / (n - 1)) t_{n-1}), which at n = 5 and 95% is 0.1% instead of 2.5%; for many seeds it
tends to the plain one. For a difference n is the smaller side's seeds. numpy and math only (the t
quantile is integrated below): scipy.stats would do the same for one 35 MB dependency.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

REPLICATES = 10_000
LEVEL = 0.95
ONE_SEED = "no verdict (one seed)"  # one seed has no spread to resample: its interval is not shown
# With few seeds the expanded interval is about the seeds' range, and every seed's difference lands
# on the same side of 0 by chance with probability 2 / 2^n when there is none: 6% at 5 seeds, 25% at
# 3. So a partial study (fewer seeds than a verdict needs) shows its intervals but no verdict.
MIN_VERDICT_SEEDS = 5


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    seeds: int  # behind the estimate (for a difference: the smaller side)

    def verdict(self, better: str = "better", worse: str = "worse") -> str:
        if self.seeds < 2:
            return ONE_SEED
        if self.seeds < MIN_VERDICT_SEEDS:
            return f"no verdict yet ({self.seeds} seeds; a verdict needs {MIN_VERDICT_SEEDS})"
        if self.low > 0:
            return better
        if self.high < 0:
            return worse
        return "no difference detectable"

    def text(self, digits: int = 3) -> str:
        sign = "+" if self.estimate >= 0 else ""
        if self.seeds < 2:
            return f"{sign}{self.estimate:.{digits}f} [no interval: one seed]"
        return f"{sign}{self.estimate:.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def _resampled_means(values: np.ndarray, rng: np.random.Generator, replicates: int) -> np.ndarray:
    return values[rng.integers(len(values), size=(replicates, len(values)))].mean(1)


@lru_cache(maxsize=None)  # the tables ask for the same few (level, seeds) hundreds of times
def t_quantile(p: float, df: int) -> float:
    """Student's t quantile for p > 1/2: its density integrated numerically, inverted by bisection."""
    norm = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def cdf(x: float) -> float:
        t = np.linspace(0.0, x, 20_001)
        return 0.5 + np.trapezoid(norm * (1 + t * t / df) ** (-(df + 1) / 2), t)

    low, high = 0.0, 1.0
    while cdf(high) < p:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2


def expanded_tail(level: float, n: int) -> float:
    """Each tail's probability for the expanded percentile interval on n seeds (Hesterberg 2015)."""
    if n < 2:
        return (1 - level) / 2
    z = math.sqrt(n / (n - 1)) * t_quantile(1 - (1 - level) / 2, n - 1)
    return 0.5 * math.erfc(z / math.sqrt(2))


def _bounds(draws: np.ndarray, level: float, n: int) -> tuple[float, float]:
    tail = expanded_tail(level, n) * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def mean_interval(values, level: float = LEVEL, replicates: int = REPLICATES, seed: int = 0) -> Interval:
    """The mean over seeds and its bootstrap interval (deterministic for a given `seed`)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        raise ValueError("no values to bootstrap")
    draws = _resampled_means(values, np.random.default_rng(seed), replicates)
    return Interval(float(values.mean()), *_bounds(draws, level, len(values)), len(values))


def difference_interval(a, b, level: float = LEVEL, replicates: int = REPLICATES, seed: int = 0) -> Interval:
    """mean(a) - mean(b) and its bootstrap interval, each side's seeds resampled on their own. A
    single b (the base model, which has no training seed) is a constant."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("no values to bootstrap")
    rng = np.random.default_rng(seed)
    draws = _resampled_means(a, rng, replicates) - _resampled_means(b, rng, replicates)
    n = min(len(a), len(b)) if len(b) > 1 else len(a)
    return Interval(float(a.mean() - b.mean()), *_bounds(draws, level, n), n)


def first_reaching(costs, scores, target: float) -> float | None:
    """The cost (model evaluations or seconds) at which a run's score first reaches `target`,
    linearly interpolated between its evaluated points (the first point is the base, cost 0);
    None if it never does. The speed figure "N x fewer evaluations to the same reward" is a ratio
    of these."""
    costs, scores = np.asarray(costs, dtype=float), np.asarray(scores, dtype=float)
    if scores[0] >= target:
        return float(costs[0])
    for i in range(1, len(scores)):
        if scores[i] >= target:
            t = (target - scores[i - 1]) / (scores[i] - scores[i - 1])
            return float(costs[i - 1] + t * (costs[i] - costs[i - 1]))
    return None


def ratio_interval(a, b, level: float = LEVEL, replicates: int = REPLICATES, seed: int = 0) -> Interval:
    """mean(a) / mean(b) and its bootstrap interval, each side resampled on its own: the "N× fewer
    evaluations" figure, with a = the reference's costs and b = the method's."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("no values to bootstrap")
    rng = np.random.default_rng(seed)
    draws = _resampled_means(a, rng, replicates) / _resampled_means(b, rng, replicates)
    n = min(len(a), len(b))
    return Interval(float(a.mean() / b.mean()), *_bounds(draws, level, n), n)
