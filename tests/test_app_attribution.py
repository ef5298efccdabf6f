"""The attribution views over a window of iterations and prompts: members averaged by rank, the
per-step summary over the same cells, the query that reads the window, and bad input named."""
import pytest

from app import attribution, monitor, monitor_tab
from jobs import api, runs
from jobs.sink import RunSink
from jobs.testing import fake_config, fake_record


def cell(iteration, prompt, k, mixed, advantage, std):
    return {"iteration": iteration, "prompt": prompt, "k": k, "mixed_advantage": mixed,
            "advantages": [[advantage]], "reward_std": std}  # one reward model, one λ


WINDOW = {"first": 4, "last": 5, "iterations": 2, "prompts": ["a red circle", "a blue square"],
          "reward_names": ["brightness"], "branch_steps": [0, 1], "granularities": [1], "merge_steps": None,
          "cells": [cell(4, 0, 0, [1.0, -1.0, 0.0], [1.0, -1.0, 0.0], 1.0),
                    cell(4, 0, 1, [0.5, 0.0, -0.5], [0.5, 0.0, -0.5], 1.0),
                    cell(5, 0, 0, [-2.0, 2.0, 0.0], [-1.0, 1.0, 0.0], 3.0),
                    cell(5, 0, 1, [0.0, 0.5, -0.5], [0.0, 0.5, -0.5], 1.0)]}


def test_a_window_is_averaged_by_member_rank_and_one_group_keeps_its_members():
    avg = attribution.average(WINDOW, {"brightness": 2.0})
    assert avg["ranked"] and avg["groups"] == 2
    # k=0: [1, 0, -1] and [2, 0, -2] by rank (by index they would cancel to [-0.5, 0.5, 0])
    assert avg["mixed"][0] == pytest.approx([1.5, 0.0, -1.5])
    assert avg["by_lambda"][0][0] == pytest.approx([2.0, 0.0, -2.0])  # weight 2 x [1, 0, -1] in both, by mixed rank
    one = attribution.average({**WINDOW, "cells": WINDOW["cells"][2:]}, prompt=0)
    assert not one["ranked"] and one["mixed"][0] == [-2.0, 2.0, 0.0]  # as stored
    assert attribution.average(WINDOW, prompt=1) is None


def test_the_step_summary_is_taken_over_the_same_window():
    line = attribution.step_summary(WINDOW)
    # k=0: mean of 1² and 3² = 5, k=1: 1 -> 83% and 17%
    assert "iterations 4–5, 2 groups" in line and "k=0: 83% · k=1: 17%" in line and "k=0 carries the most" in line
    assert "k=0: 50% · k=1: 50%" in attribution.step_summary({**WINDOW, "first": 4, "cells": WINDOW["cells"][:2]})
    assert attribution.step_summary(None) == ""


def test_figures_say_what_they_average():
    fig = attribution.member_figure(WINDOW)
    assert fig.layout.title.text == "iterations 4–5 · mean of 2 groups, by rank"
    assert fig.layout.yaxis.title.text.startswith("member rank")
    bars = attribution.bars_figure(WINDOW, 1)
    assert bars.layout.title.text.startswith("k = 1 · iterations 4–5")


def stored(iterations: int, prompts: int = 2) -> int:
    run_id = runs.create({**fake_config(iterations=100), "algorithm": {"name": "g2rpo"}})
    sink = RunSink(run_id)
    sink.begin(0)
    for it in range(iterations):
        sink.write(fake_record(it, prompts=prompts, k=2, lambdas=2, group=3))
    return run_id


def test_the_window_query_and_the_monitor_name_bad_input(store):
    run_id = stored(6)
    window = api.attribution_window(run_id, None, 3)
    assert (window["first"], window["last"], window["iterations"]) == (3, 5, 3)
    assert len(window["cells"]) == 3 * 2 * 2 and window["branch_steps"] == [0, 1]
    assert api.attribution_window(run_id, 1, 10)["first"] == 0  # clipped at the run's start
    view, _ = monitor.poll(None, run_id)
    members, bars, summary = monitor_tab.iteration_views(view, -1, 3, -1, 1)
    assert "iterations 3–5, 6 groups" in summary and "mean of 6 groups" in members.layout.title.text
    assert monitor_tab.iteration_views(view, -1, 3, 7, 1)[2].startswith("⚠️ No prompt 7: this run draws 2 prompts")
    assert "window is 1 to 200" in monitor_tab.iteration_views(view, -1, 500, -1, 1)[2]
    assert "whole number" in monitor_tab.iteration_views(view, 2.5, 3, -1, 1)[2]
    assert "Iteration 40 has no attribution" in monitor_tab.iteration_views(view, 40, 3, -1, 1)[2]
