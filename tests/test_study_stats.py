"""The study's intervals and verdicts: the bootstrap's invariants and the cost to reach a target."""
import numpy as np
import pytest

from engine.study.stats import difference_interval, first_reaching, mean_interval


def test_the_interval_holds_the_mean_is_reproducible_and_narrows_with_more_seeds():
    rng = np.random.default_rng(1)
    few, many = rng.normal(0.8, 0.02, 5), rng.normal(0.8, 0.02, 50)
    a = mean_interval(few)
    assert a.low <= a.estimate <= a.high and a.estimate == pytest.approx(few.mean()) and a.seeds == 5
    assert mean_interval(few) == a  # the same seeds give the same table
    assert a.low >= few.min() and a.high <= few.max()  # a mean never leaves the values' range
    b = mean_interval(many)
    assert b.high - b.low < a.high - a.low


def test_verdicts_follow_the_interval():
    base = [0.74]
    assert difference_interval([0.80, 0.81, 0.79, 0.82, 0.80], base).verdict() == "better"
    assert difference_interval([0.70, 0.71, 0.69, 0.72, 0.70], base).verdict() == "worse"
    noisy = difference_interval([0.70, 0.78, 0.74, 0.77, 0.71], base)
    assert noisy.low < 0 < noisy.high and noisy.verdict() == "no difference detectable"
    assert noisy.text().startswith("+0.") and "[" in noisy.text()


def test_a_difference_between_two_methods_resamples_each_side():
    a, b = [0.80, 0.82, 0.81], [0.78, 0.79, 0.80]
    d = difference_interval(a, b)
    assert d.estimate == pytest.approx(np.mean(a) - np.mean(b))
    # wider than treating b as exact, because b's seeds vary too
    assert d.high - d.low > difference_interval(a, [np.mean(b)]).high - difference_interval(a, [np.mean(b)]).low
    with pytest.raises(ValueError):
        difference_interval([], b)


def test_first_reaching_interpolates_between_evaluations():
    costs, scores = [0, 100, 200, 300], [0.70, 0.74, 0.80, 0.79]
    assert first_reaching(costs, scores, 0.77) == pytest.approx(150.0)
    assert first_reaching(costs, scores, 0.70) == 0.0
    assert first_reaching(costs, scores, 0.85) is None


def test_the_bootstrap_matches_closed_forms():
    # two seeds 0 and 1: a resampled mean is 0, 1/2 or 1 with chances 1/4, 1/2, 1/4, so the 95% interval is [0, 1]
    two = mean_interval([0.0, 1.0])
    assert (two.low, two.high) == (0.0, 1.0)
    # many seeds: the percentile interval approaches mean ± 1.96 σ/√n (σ with n in the denominator: the bootstrap's)
    values = np.random.default_rng(3).normal(0.5, 0.1, 400)
    iv = mean_interval(values)
    half = 1.959964 * values.std() / np.sqrt(len(values))
    assert iv.low == pytest.approx(values.mean() - half, abs=0.1 * half)
    assert iv.high == pytest.approx(values.mean() + half, abs=0.1 * half)


def test_the_speed_ratio_is_a_ratio_of_means_with_its_own_interval():
    from engine.study.stats import ratio_interval

    r = ratio_interval([300, 310, 290], [100, 105, 95])
    assert r.estimate == pytest.approx(3.0) and r.low < 3.0 < r.high
    assert ratio_interval([200.0], [100.0]).text().startswith("+2.000")


def test_the_t_quantile_matches_the_tables():
    from engine.study.stats import t_quantile

    for df, expected in ((1, 12.7062), (4, 2.7764), (29, 2.0452)):
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=2e-3)


def test_with_few_seeds_the_interval_is_expanded_to_a_t_intervals_width():
    # the expanded percentile interval on n seeds tends to mean ± t_{n-1} s / √n (s with n − 1)
    values = np.random.default_rng(5).normal(0.5, 0.1, 30)
    iv = mean_interval(values)
    half = 2.0452 * values.std(ddof=1) / np.sqrt(len(values))
    assert (iv.high - iv.low) / 2 == pytest.approx(half, rel=0.1)
    five = np.array([0.70, 0.72, 0.71, 0.74, 0.69])
    plain_tail = np.percentile(np.random.default_rng(0).choice(five, (10_000, 5)).mean(1), [2.5, 97.5])
    assert mean_interval(five).high - mean_interval(five).low > 1.3 * (plain_tail[1] - plain_tail[0])


def test_one_seed_gives_no_interval_and_no_verdict():
    from engine.study.stats import ONE_SEED

    one = difference_interval([0.7], [0.5])
    assert one.seeds == 1 and one.verdict() == ONE_SEED and "no interval: one seed" in one.text()
    two = difference_interval([0.7, 0.72], [0.5])  # an interval (the seeds' range), but no verdict yet
    assert two.low > 0 and two.verdict() == "no verdict yet (2 seeds; a verdict needs 5)"
