"""app.curves: smoothed training curves, held-out scores on their own panel, and the
over-optimisation warning with the best held-out checkpoint."""
import json

import pytest

from app import curves, figures
from tests.test_app_figures import EVALUATIONS, is_empty, make_metrics, traces


def zigzag(n=40):
    """One prompt per iteration: the mean jumps between a low and a high value while rising slowly."""
    return [{"iteration": i, "reward": (0.9 if i % 2 else 0.0) + 0.005 * i, "model_evaluations": 10, "seconds": 1.0,
             "rewards": {"preference": {"mean": (0.9 if i % 2 else 0.0) + 0.005 * i, "std": 0.1}}} for i in range(n)]


def test_ema_is_debiased_and_keeps_gaps():
    assert curves.ema([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # no pull towards 0
    assert curves.ema([0.0, None, 1.0], 0.5) == [0.0, None, pytest.approx(2 / 3)]
    assert curves.ema([3.0, 5.0], 0.0) == [3.0, 5.0]
    with pytest.raises(ValueError):
        curves.ema([1.0], 1.0)


def test_smoothing_flattens_the_zigzag_and_keeps_the_raw_points_faint():
    raw = curves.reward_curves(zigzag(), smoothing=0.0)
    smooth = curves.reward_curves(zigzag(), smoothing=0.9)
    (raw_line,), (smooth_line,) = traces(raw, "preference"), traces(smooth, "preference")
    jumps = lambda ys: max(abs(b - a) for a, b in zip(ys[10:], ys[11:]))  # noqa: E731
    assert jumps(raw_line.y) == pytest.approx(0.905, abs=0.01) and jumps(smooth_line.y) < 0.2
    (points,) = traces(smooth, "preference (raw)")
    assert points.mode == "markers" and points.marker.opacity < 0.5 and list(points.y) == list(raw_line.y)
    assert not traces(raw, "preference (raw)")  # unsmoothed, the line is the raw means


def test_held_out_scores_have_their_own_panel_as_change_since_base():
    fig = curves.reward_curves(make_metrics(), EVALUATIONS, held_out={"aesthetic"})
    (held,) = traces(fig, "aesthetic (held out)")
    assert list(held.y) == pytest.approx([0.0, 0.5]) and list(held.customdata) == [5.0, 5.5]
    assert held.yaxis == "y2" and traces(fig, "brightness")[0].yaxis == "y"  # not on the training axis
    (ev,) = traces(fig, "brightness (eval)")
    assert list(ev.x) == [0, 2] and ev.line.color == traces(fig, "brightness")[0].line.color
    assert sum(1 for t in fig.data if t.showlegend is not False) == 4  # 2 training + 2 held-out entries
    json.loads(fig.to_json())


def test_cumulative_axes_and_the_empty_figure():
    fig = curves.reward_curves(make_metrics(), EVALUATIONS, x="model_evaluations")
    assert list(traces(fig, "brightness")[0].x) == [10, 30, 60]
    assert list(traces(fig, "brightness (eval)")[0].x) == [0, 30]  # base at 0; after 2 iterations: 10 + 20
    assert is_empty(curves.reward_curves([]))
    with pytest.raises(ValueError):
        curves.reward_curves(make_metrics(), x="wall")
    assert figures.X_TITLES["model_evaluations"] in [a.title.text for a in (fig.layout.xaxis2,)]


def run_with(rising_training: bool, falling_held_out: bool, n=30, every=5):
    """Metrics, evaluations every `every` iterations (base first) and a checkpoint at each."""
    metrics = [{"iteration": i, "reward": 0.2 + (0.02 * i if rising_training else 0.0)} for i in range(n)]
    evaluations = [{"trained": t, "scores": {"shape": (0.5 + 0.05 * t if t <= 10 else 1.0 - 0.03 * t)
                                             if falling_held_out else 0.5 + 0.01 * t, "preference": 0.3}}
                   for t in range(0, n + 1, every)]
    checkpoints = [{"trained": t, "path": f"checkpoints/iter_{t:06d}"} for t in range(every, n + 1, every)]
    return metrics, evaluations, checkpoints


def test_the_hacking_pattern_warns_and_offers_the_best_held_out_checkpoint():
    metrics, evaluations, checkpoints = run_with(rising_training=True, falling_held_out=True)
    hacking = curves.over_optimisation(metrics, evaluations, held_out={"shape"})
    assert hacking is not None and list(hacking["scores"]) == ["shape"] and hacking["to"] == 30
    best = curves.best_checkpoint(evaluations, checkpoints, held_out={"shape"})
    assert best["checkpoint"] == "checkpoints/iter_000010"  # shape peaked at 10 iterations
    line = curves.warning_line(metrics, evaluations, checkpoints, held_out={"shape"})
    assert "Over-optimisation" in line and "checkpoints/iter_000010" in line and "checkpoints/iter_000030" in line


@pytest.mark.parametrize("rising, falling", [(True, False), (False, True), (False, False)])
def test_no_warning_without_the_pattern(rising, falling):
    metrics, evaluations, checkpoints = run_with(rising, falling)
    assert curves.over_optimisation(metrics, evaluations, held_out={"shape"}) is None
    assert curves.warning_line(metrics, evaluations, checkpoints, held_out={"shape"}) == ""


def test_held_out_readout_says_the_change_since_base():
    line = curves.held_out_readout(EVALUATIONS, held_out={"aesthetic"})
    assert "after 2 iterations" in line and "aesthetic (held out) 5 → 5.5 (+0.5)" in line
    assert curves.held_out_readout([]) == ""
