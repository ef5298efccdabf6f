"""app.figures: the figures hold the right numbers in the right places, and empty input never raises."""
import json
from datetime import datetime

import pytest

from app import figures


def make_metrics(n=3, names=("brightness", "contrast")):
    """n iterations (0..n-1) with two reward models; iteration i did 10*(i+1) model evaluations."""
    return [{"iteration": i, "created_at": datetime(2024, 1, 1), "reward": 0.5 + i, "loss": 0.1 * i,
             "ratio_mean": 1.0, "ratio_min": 0.9, "ratio_max": 1.1, "clip_fraction": 0.05, "approx_kl": 0.01 * i,
             "grad_norm": None if i == 1 else 2.0, "seconds": 1.5 * (i + 1), "model_evaluations": 10 * (i + 1),
             "rewards": {name: {"mean": 0.1 * i + j, "std": 0.1} for j, name in enumerate(names)},
             "record": {"time": {"rollout": 1.0, "reward": 0.2, "train": 0.3}, "policy_movement": 0.01 * i}}
            for i in range(n)]


EVALUATIONS = [{"trained": 0, "scores": {"brightness": 0.2, "aesthetic": 5.0}, "prompts": "eval"},
               {"trained": 2, "scores": {"brightness": 0.4, "aesthetic": 5.5}, "prompts": "eval"}]


def make_history():
    """Two iteration bins x three branch steps."""
    return {"iterations": [0, 5], "every": 5, "branch_steps": [0, 2, 4],
            "abs_advantage": [[1.0, 2.0, 3.0], [4.0, None, 6.0]],
            "reward_std": [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
            "agreement": [[0.5, None, 0.7], [None, None, None]]}


def make_heat():
    """One iteration: 2 reward models, 1 prompt, 2 branch steps, 2 granularities, 3 members.
    advantages[m][p][k][λ][member] = (m + 1) * (100k + 10λ + member)."""
    adv = [[[[[(m + 1) * (100 * k + 10 * g + member) for member in range(3)] for g in range(2)]
              for k in range(2)]] for m in range(2)]
    return {"iteration": 7, "prompts": ["a red circle"], "reward_names": ["brightness", "contrast"],
            "branch_steps": [0, 3], "granularities": [1, 2], "rewards": adv, "advantages": adv,
            "mixed_advantage": [[[-1.0, 0.5, 0.5], [0.2, -0.4, 0.2]]]}


def traces(fig, name):
    return [t for t in fig.data if t.name == name]


def is_empty(fig, text="no data yet"):
    return not fig.data and [a.text for a in fig.layout.annotations] == [text]


def test_invalid_choices_raise():
    with pytest.raises(ValueError):
        figures.overlay([], x="wall")
    with pytest.raises(ValueError):
        figures.step_heatmap(make_history(), value="agreement")


def test_empty_inputs_give_the_note():
    assert is_empty(figures.overlay([]))
    assert is_empty(figures.diagnostics([]))
    empty_history = {"iterations": [], "every": 1, "branch_steps": [],
                     "abs_advantage": [], "reward_std": [], "agreement": []}
    assert is_empty(figures.step_heatmap(empty_history))
    assert is_empty(figures.granularity_agreement(empty_history))
    assert is_empty(figures.member_heatmap(None))
    assert is_empty(figures.granularity_bars(None))
    json.loads(figures.diagnostics([]).to_json())


def test_step_heatmap_rows_are_branch_steps():
    (heat,) = figures.step_heatmap(make_history()).data
    assert list(heat.y) == [0, 2, 4] and list(heat.x) == [0, 5]
    assert [list(row) for row in heat.z] == [[1.0, 4.0], [2.0, None], [3.0, 6.0]]
    assert heat.zmin == 0 and heat.zmax == 6.0  # anchored at 0, not at the smallest value
    std = figures.step_heatmap(make_history(), value="reward_std")
    assert [list(row) for row in std.data[0].z][1] == [0.2, 0.5]
    assert std.data[0].colorbar.title.text == figures.STEP_VALUES["reward_std"]


def test_member_heatmap_is_member_by_step_centred_at_zero():
    fig = figures.member_heatmap(make_heat())
    (heat,) = fig.data
    assert [list(row) for row in heat.z] == [[-1.0, 0.2], [0.5, -0.4], [0.5, 0.2]]  # z[member][k]
    assert list(heat.x) == [0, 3] and list(heat.y) == [0, 1, 2]
    assert heat.zmid == 0
    assert "iteration 7" in fig.layout.title.text and "prompt 0" in fig.layout.title.text


def test_merged_steps_are_labelled_on_both_heatmaps():
    history = figures.step_heatmap(make_history(), spans={0: 1, 2: 2, 4: 3})
    assert list(history.layout.yaxis.ticktext) == ["0", "2→4", "4→7"] and "E-GRPO" in history.layout.yaxis.title.text
    member = figures.member_heatmap({**make_heat(), "merge_steps": [1, 2]})
    assert list(member.layout.xaxis.ticktext) == ["0", "3→5"]
    assert list(figures.member_heatmap(make_heat()).layout.xaxis.ticktext) == ["0", "3"]  # G²RPO: plain k
    assert "E-GRPO" not in figures.step_heatmap(make_history()).layout.yaxis.title.text


def test_granularity_bars_weighted_sum_over_reward_models():
    fig = figures.granularity_bars(make_heat(), k_index=1, weights=[2.0, 0.5])
    (lam2,) = traces(fig, "λ=2")
    # 2 * (100 + 10 + member) + 0.5 * 2 * (100 + 10 + member) = 3 * (110 + member)
    assert list(lam2.y) == pytest.approx([330, 333, 336])
    assert list(traces(fig, "mixed")[0].y) == [0.2, -0.4, 0.2]
    unweighted = figures.granularity_bars(make_heat(), weights={"contrast": 0.0})
    assert list(traces(unweighted, "λ=1")[0].y) == pytest.approx([0, 1, 2])
    assert "k = 0" in unweighted.layout.title.text


def test_granularity_agreement_averages_over_steps_skipping_none():
    (line,) = figures.granularity_agreement(make_history()).data
    assert list(line.x) == [0, 5]
    assert line.y[0] == pytest.approx(0.6) and line.y[1] is None
    one = make_history() | {"agreement": [[None] * 3, [None] * 3]}
    assert is_empty(figures.granularity_agreement(one), "one granularity: nothing to compare")


def test_diagnostics_panels_and_kl_choice():
    metrics = make_metrics()
    fig = figures.diagnostics(metrics)
    titles = [a.text for a in fig.layout.annotations]
    assert "approx KL (old→new)" in titles
    assert list(traces(fig, "grad_norm")[0].y) == [2.0, None, 2.0]
    assert "policy movement ‖Δv‖/‖v_base‖" in titles
    assert list(traces(fig, "policy_movement")[0].y) == [m["record"].get("policy_movement") for m in metrics]
    assert [t.name for t in fig.data if t.type == "bar"] == list(figures.PHASES)
    for m in metrics:
        m["record"]["kl"] = 0.3
    with_kl = figures.diagnostics(metrics)
    assert "KL to reference" in [a.text for a in with_kl.layout.annotations]
    assert list(traces(with_kl, "KL to reference")[0].y) == [0.3] * 3
    json.loads(with_kl.to_json())


def test_overlay_one_training_trace_per_run():
    runs = [{"label": "G²RPO", "metrics": make_metrics(), "evaluations": EVALUATIONS},
            {"label": "DanceGRPO", "metrics": make_metrics(2), "evaluations": []}]
    fig = figures.overlay(runs, x="model_evaluations")
    assert [t.name for t in fig.data] == ["G²RPO", "G²RPO (eval)", "DanceGRPO"]
    assert list(fig.data[0].y) == pytest.approx([0, 0.1, 0.2])  # default: first reward model
    assert list(fig.data[1].x) == [0, 30]
    assert fig.data[0].line.color != fig.data[2].line.color
    total = figures.overlay(runs, reward="total")
    assert list(total.data[0].y) == [0.5, 1.5, 2.5] and len(total.data) == 2  # no "total" evaluated


def test_a_forward_process_run_shows_its_old_policy_deviation_instead_of_a_ratio():
    metrics = make_metrics()
    for i, m in enumerate(metrics):
        m["record"]["old_deviation"] = 0.01 * i
        m["ratio_min"] = m["ratio_max"] = m["ratio_mean"] = None
    fig = figures.diagnostics(metrics)
    assert "mean (v − v_old)² in the update" in [a.text for a in fig.layout.annotations]
    assert list(traces(fig, "old deviation")[0].y) == [0.0, 0.01, 0.02]
    assert not traces(fig, "ratio mean")


def test_panels_flat_by_construction_are_left_out_and_named():
    metrics = make_metrics()
    for m in metrics:  # a single on-policy update with beta = 0: ratio exactly 1, no clipping, KL 0
        m.update(ratio_mean=1.0, ratio_min=1.0, ratio_max=1.0, clip_fraction=0.0, approx_kl=0.0)
    fig = figures.diagnostics(metrics)
    titles = [a.text for a in fig.layout.annotations]
    assert "importance ratio" not in titles and "clip fraction" not in titles and "approx KL (old→new)" not in titles
    assert {"loss", "grad norm", "time per iteration (s)"} <= set(titles)
    assert not traces(fig, "ratio mean") and not traces(fig, "clip_fraction")
    assert "ratio ≡ 1" in fig.layout.title.text and "KL ≡ 0" in fig.layout.title.text
    shown = figures.diagnostics(make_metrics())  # values that move keep their panels
    assert {"importance ratio", "clip fraction"} <= {a.text for a in shown.layout.annotations}
    assert shown.layout.title.text is None


def test_tiny_values_read_as_powers_of_ten_not_si_prefixes():
    metrics = make_metrics()
    for i, m in enumerate(metrics):  # DanceGRPO's loss: about 1e-8 (plotly's default says "10n")
        m["loss"] = (i - 1) * 1e-8
    fig = figures.diagnostics(metrics)
    yaxes = [fig.layout[name] for name in fig.layout if name.startswith("yaxis")]
    assert yaxes and all(axis.exponentformat == "e" for axis in yaxes)


def test_figures_leave_the_background_to_the_page_theme():
    for fig in (figures.diagnostics(make_metrics()), figures.step_heatmap(make_history()), figures.overlay([])):
        assert fig.layout.paper_bgcolor == fig.layout.plot_bgcolor == figures.TRANSPARENT


def test_rows_of_several_iterations_draw_their_range_so_spikes_show():
    """A long run's curve rows (jobs.rollup) carry each value's min and max: drawn as bands."""
    from app import curves

    rows = make_metrics(3)
    for row in rows:
        row["count"] = 16
        row["low"] = {**row, "grad_norm": 1.0, "ratio_min": 0.5, "rewards": {"brightness": {"mean": -1.0}}}
        row["high"] = {**row, "grad_norm": 50.0, "ratio_max": 1.5, "rewards": {"brightness": {"mean": 3.0}}}
    fig = figures.diagnostics(rows)
    band = traces(fig, "grad_norm min/max")
    assert [list(t.y) for t in band] == [[1.0] * 3, [50.0] * 3] and band[1].fill == "tonexty"
    ratio = traces(fig, "ratio min/max")
    assert [list(t.y) for t in ratio] == [[0.5] * 3, [1.5] * 3]
    assert not traces(figures.diagnostics(make_metrics(3)), "grad_norm min/max")  # one iteration a row: no band
    reward = curves.reward_curves(rows)
    assert [list(t.y) for t in traces(reward, "brightness min/max")] == [[-1.0] * 3, [3.0] * 3]
