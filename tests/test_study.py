"""The study (`python -m engine.study`): budget and plan logic, tables, resume; the quick run end to end (slow)."""
import json
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from engine.study import runs
from engine.study.plan import METHODS, Plan, build_plan, crossings, probe_evaluations, run_config, thresholds
from engine.study.tables import interpolate, table_markdown
from engine.world import eval_prompts

BY_KEY = {m.key: m for m in METHODS}


def test_checkpoints_go_where_the_running_total_first_reaches_each_fraction():
    assert thresholds(35, [0.25, 0.5, 0.75, 1.0]) == [9, 18, 27, 35]
    assert crossings([10, 10, 10, 10], 35, [0.25, 0.5, 0.75, 1.0]) == [1, 2, 3, 4]
    assert crossings([10, 10], 35, [0.25, 0.5, 0.75, 1.0]) == [1, 2, None, None]  # not there yet
    assert crossings([100], 35, [0.5, 1.0]) == [1, 1]  # one iteration can cross several fractions
    assert crossings([5, 3, 9], 16, [0.5, 1.0]) == [2, 3]  # uneven iterations (DanceGRPO's vary)


def test_every_method_trains_the_same_reward_and_seeds_with_its_own_preset():
    plan = build_plan(quick=False, budget=5000)  # an explicit budget: no probe iteration
    assert [m.key for m in plan.methods] == list(BY_KEY) and plan.seeds == [0, 1, 2]
    assert plan.fractions == [0.25, 0.5, 0.75, 1.0] and len(plan.eval_prompts) == len(eval_prompts())
    for method in plan.methods:
        cfg = run_config(plan, method, seed=2)
        assert (cfg.model.name, [r.name for r in cfg.rewards], cfg.train.seed) == ("builtin", ["preference"], 2)
        assert cfg.algorithm.name == method.preset and cfg.train.eval_every == 0 and cfg.algorithm.group_size == 8
        assert cfg.train.iterations > plan.budget and cfg.train.checkpoint_every > plan.budget  # the study saves
    lambdas = [run_config(plan, BY_KEY[k], 0).algorithm.granularities for k in ("g2rpo-L1", "g2rpo-L12", "g2rpo-L123")]
    assert lambdas == [[1], [1, 2], [1, 2, 3]]
    quick = build_plan(quick=True, budget=100, overrides=["algorithm.group_size=12"], cost=False)
    assert quick.seeds == [0, 1] and len(quick.eval_prompts) < len(plan.eval_prompts) and quick.cost_sweeps == {}
    assert all(run_config(quick, m, 0).algorithm.group_size == 12 for m in quick.methods)  # --set: alike for all


def test_the_budget_defaults_to_reference_iterations_of_g2rpo_with_every_granularity():
    plan = build_plan(quick=True, reference_iterations=3, overrides=["model.name=tiny-flux", "algorithm.group_size=2",
                      "algorithm.branch_steps=[0,1]", "sampling.steps=8"], cost=False)
    per_iteration = probe_evaluations(plan, BY_KEY["g2rpo-L123"])
    assert plan.budget == 3 * per_iteration
    assert probe_evaluations(plan, BY_KEY["g2rpo-L1"]) < per_iteration  # fewer granularities, fewer completions


def rows_for(method, label, values, seconds=(10.0, 20.0, 30.0)):
    return [{"method": method, "label": label, "seed": seed, "fraction": 1.0, "iteration": 5, "evaluations": 100,
             "seconds": t, "scores": {"pref": v, "shape": v / 2}} for seed, (v, t) in enumerate(zip(values, seconds))]


def test_table_has_base_and_method_rows_with_mean_and_sample_std_and_marks_held_out_columns():
    base = {"method": "base", "label": "builtin (base)", "seed": None, "fraction": 0.0, "iteration": 0,
            "evaluations": 0, "seconds": 0.0, "scores": {"pref": 0.1, "shape": 0.05}}
    rows = [base, *rows_for("a", "Method A", [0.2, 0.3, 0.4]), *rows_for("b", "Method B", [0.5, 0.5, 0.5])]
    text = table_markdown(rows, [("a", "Method A"), ("b", "Method B")], ["pref", "shape"], {"shape"}, "pref")
    lines = text.splitlines()
    assert lines[2] == ("| training reward | method | pref (in-domain) | shape (out-of-domain) | iterations | "
                        "evaluations | train s |")
    assert "| — | builtin (base) | 0.100 | 0.050 | 0 | 0 | 0 |" in text
    assert "| pref | Method A | 0.300 ± 0.100 | 0.150 ± 0.050 | 5 ± 0 | 100 ± 0 | 20.0 ± 10.0 |" in text
    assert "| pref | Method B | **0.500 ± 0.000** | **0.250 ± 0.000** |" in text  # the best mean is bold
    assert "At the same training time (10 s" in text


def test_equal_time_scores_interpolate_between_the_base_and_the_checkpoints():
    base = {"scores": {"pref": 0.0}}
    rows = [{"method": "a", "seed": 0, "seconds": t, "scores": {"pref": v}} for t, v in ((10.0, 1.0), (30.0, 2.0))]
    assert [r["scores"]["pref"] for r in interpolate(rows, base, "a", 5.0, ["pref"])] == [0.5]
    assert [r["scores"]["pref"] for r in interpolate(rows, base, "a", 20.0, ["pref"])] == [1.5]


@pytest.fixture
def tiny_plan():
    """Two methods, one seed, the random 16x16 model, a budget of a few small iterations."""
    return Plan(methods=[BY_KEY["g2rpo-L12"], BY_KEY["dancegrpo"]], seeds=[0], budget=150, fractions=[0.25, 0.5, 1.0],
                overrides=["model.name=tiny-flux", "rewards=[{name: brightness}]", "algorithm.group_size=3",
                           "algorithm.branch_steps=[0,1]", "sampling.steps=6", "train.learning_rate=0.05",
                           "train.prompts_per_iteration=1"],
                eval_prompts=eval_prompts()[:2], eval_seeds=1, eval_rewards=["brightness", "background"])


def test_a_killed_run_resumes_from_its_checkpoint_to_the_uninterrupted_result(tiny_plan, tmp_path, monkeypatch):
    from engine.trainer import Trainer

    method = tiny_plan.methods[0]
    whole = runs.train_run(tiny_plan, method, 0, tmp_path / "whole", progress=False)
    assert whole["evaluations"] >= tiny_plan.budget and len(whole["checkpoints"]) == 3
    assert [c["iteration"] for c in whole["checkpoints"]] == sorted(c["iteration"] for c in whole["checkpoints"])

    calls, real = [], Trainer.iteration

    def dies_after_the_half(self, it):
        if it == whole["checkpoints"][1]["iteration"] + 1:  # killed after the checkpoint at half the budget
            raise KeyboardInterrupt
        calls.append(it)
        return real(self, it)

    monkeypatch.setattr(Trainer, "iteration", dies_after_the_half)
    with pytest.raises(KeyboardInterrupt):
        runs.train_run(tiny_plan, method, 0, tmp_path / "killed", progress=False)
    assert runs.finished(tmp_path / "killed", method, 0) is None
    monkeypatch.setattr(Trainer, "iteration", lambda self, it: calls.append(it) or real(self, it))
    calls.clear()
    resumed = runs.train_run(tiny_plan, method, 0, tmp_path / "killed", progress=False)
    assert calls[0] == whole["checkpoints"][1]["iteration"]  # from the checkpoint, not from scratch
    strip = lambda run: [{k: v for k, v in c.items() if k != "seconds"} for c in run["checkpoints"]]  # noqa: E731
    assert strip(resumed) == strip(whole) and resumed["evaluations"] == whole["evaluations"]
    final = whole["checkpoints"][-1]["checkpoint"] + "/trainable.safetensors"
    a, b = (load_file(runs.run_dir(root, method, 0) / final) for root in (tmp_path / "whole", tmp_path / "killed"))
    assert all((a[k] == b[k]).all() for k in a)  # resume is exact


@pytest.mark.slow  # about 15 s: a second full invocation of a tiny study
def test_a_second_invocation_skips_finished_runs_and_scores(tiny_plan, tmp_path, monkeypatch):
    from engine import evaluate as engine_evaluate
    from engine.study.__main__ import run_plan
    from engine.trainer import Trainer

    rows = run_plan(tiny_plan, tmp_path, progress=False)
    assert {r["method"] for r in rows} == {"base", "g2rpo-L12", "dancegrpo"} and len(rows) == 1 + 2 * 3
    for name in ("table.md", "results.json", "results.csv", "curves.html", "study.json"):
        assert (tmp_path / name).exists(), name
    before = (tmp_path / "results.json").read_text()

    def nothing_to_redo(*args, **kwargs):
        raise AssertionError("finished work was redone")

    monkeypatch.setattr(Trainer, "__init__", nothing_to_redo)
    monkeypatch.setattr(engine_evaluate, "sample_images", nothing_to_redo)
    assert run_plan(tiny_plan, tmp_path, progress=False) == rows
    assert (tmp_path / "results.json").read_text() == before
    assert len(json.loads((tmp_path / "study.json").read_text())["invocations"]) == 2

    changed = Plan(**{**tiny_plan.__dict__, "budget": tiny_plan.budget * 2})  # never mixed with old runs
    with pytest.raises(ValueError, match="different plan"):
        run_plan(changed, tmp_path, progress=False)


@pytest.mark.slow
def test_quick_study_end_to_end(tmp_path):
    """The whole quick study as a user runs it (a few minutes on 2 cores)."""
    out = tmp_path / "study"
    done = subprocess.run([sys.executable, "-m", "engine.study", "--quick", "--no-progress", "--out", str(out)],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("table.md", "results.json", "results.csv", "curves.html", "cost.md", "study.json"):
        assert (out / name).exists(), name
    table = (out / "table.md").read_text()
    for label in ["builtin (base)", *[m.label for m in METHODS]]:
        assert f"| {label} |" in table, label
    results = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in results["rows"]} == {"base", *[m.key for m in METHODS]}
    assert all(m in (out / "cost.md").read_text() for m in ("g2rpo", "dancegrpo", "flowgrpo", "mixgrpo"))
