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
