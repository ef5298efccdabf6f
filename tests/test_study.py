"""The study (`python -m engine.study`): the protocols' budgets and checkpoints, the plan, the tables'
verdicts and costs, resume; the quick run end to end (slow)."""
import json
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from engine.study import runs
from engine.study.plan import BY_KEY, MAIN_METHODS, METHODS, PROTOCOLS, Plan, Track, build_plan, crossings, run_config
from engine.study.tables import differences_table, hacking_table, target_table, verdicts_markdown
from engine.world import eval_prompts, train_prompts


def budget_plan(**budgets) -> Plan:
    return Plan(methods=[], tracks=[], seeds=[0], budgets=budgets, fractions=[0.5, 1.0], overrides=[],
                eval_prompts=[], train_prompts=[], eval_seeds=1, eval_rewards=[])


def test_each_protocol_checkpoints_where_the_run_first_reaches_its_share_of_the_budget():
    plan = budget_plan(iterations=4, evaluations=35, seconds=3.0)
    got = crossings([10, 10, 10, 10], 0.1, plan, PROTOCOLS)  # 0.1 s per evaluation: 1 s per iteration
    assert got == {("iterations", 0.5): 2, ("iterations", 1.0): 4, ("evaluations", 0.5): 2,
                   ("evaluations", 1.0): 4, ("seconds", 0.5): 2, ("seconds", 1.0): 3}
    assert crossings([10], 0.1, plan, PROTOCOLS)[("evaluations", 0.5)] is None  # not there yet
    assert crossings([10], 0.1, plan, ("iterations",)) == {("iterations", 0.5): None, ("iterations", 1.0): None}
    assert crossings([100], 1.0, plan, ("evaluations",)) == {("evaluations", 0.5): 1, ("evaluations", 1.0): 1}
    # uneven iterations (DanceGRPO's vary): the running total decides, and a dearer evaluation spends time faster
    assert crossings([5, 3, 10, 20], 0.1, plan, ("evaluations",)) == {("evaluations", 0.5): 3, ("evaluations", 1.0): 4}
    assert crossings([5, 3, 10, 20], 0.2, plan, ("seconds",)) == {("seconds", 0.5): 2, ("seconds", 1.0): 3}


def test_every_method_trains_from_its_own_preset_with_the_tracks_reward_and_seed():
    plan = build_plan(quick=False)
    assert plan.seeds == [0, 1, 2, 3, 4] and plan.budgets == {"iterations": 40, "evaluations": 120_000, "seconds": 160.0}
    assert [t.reward for t in plan.tracks] == ["adherence"]  # the hacking track is opt-in in the full study
    plan = build_plan(quick=False, hacking=True)
    adherence, preference = plan.tracks
    assert (adherence.reward, adherence.methods, adherence.protocols) == ("adherence", MAIN_METHODS, PROTOCOLS)
    assert preference.reward == "preference" and preference.protocols == ("iterations",)
    assert len(plan.eval_prompts) == len(eval_prompts()) and 0 < len(plan.train_prompts) < len(train_prompts())
    assert not set(plan.train_prompts) & set(plan.eval_prompts)
    for track in plan.tracks:
        for key in track.methods:
            cfg = run_config(plan, track.reward, BY_KEY[key], seed=3)
            assert (cfg.model.name, [r.name for r in cfg.rewards], cfg.train.seed) == ("builtin", [track.reward], 3)
            assert cfg.algorithm.name == BY_KEY[key].preset and cfg.train.eval_every == 0
            assert cfg.train.checkpoint_every > 10_000  # the study decides where to save
    # each method keeps its authors' update schedule and its preset's prompts per iteration
    schedule = {k: run_config(plan, "adherence", BY_KEY[k], 0).train.optimizer_step for k in ("g2rpo-L123", "dancegrpo")}
    assert schedule == {"g2rpo-L123": "per_step", "dancegrpo": "per_iteration"}
    assert run_config(plan, "adherence", BY_KEY["g2rpo-L1"], 0).algorithm.granularities == [1]
    quick = build_plan(quick=True, overrides=["algorithm.group_size=12"], methods=["dancegrpo", "diffusionnft"])
    assert quick.seeds == [0, 1] and len(quick.eval_prompts) < len(plan.eval_prompts)
    assert [t.methods for t in quick.tracks] == [("dancegrpo", "diffusionnft"), ("diffusionnft",)]
    assert all(run_config(quick, "adherence", m, 0).algorithm.group_size == 12 for m in quick.methods)  # --set: alike
    assert build_plan(quick=True, budgets={"seconds": 3.0}, hacking=False).budgets["seconds"] == 3.0
    assert len(build_plan(quick=True, hacking=False).tracks) == 1


@pytest.fixture
def tiny_plan():
    """Two methods, one seed, the random 16x16 model, a budget of a few small iterations."""
    return Plan(methods=[BY_KEY["g2rpo-L12"], BY_KEY["dancegrpo"]],
                tracks=[Track("brightness", ("g2rpo-L12", "dancegrpo"), PROTOCOLS)], seeds=[0],
                budgets={"iterations": 2, "evaluations": 150, "seconds": 0.5}, fractions=[0.5, 1.0],
                overrides=["model.name=tiny-flux", "algorithm.group_size=3", "algorithm.branch_steps=[0,1]",
                           "sampling.steps=6", "train.learning_rate=0.05", "train.prompts_per_iteration=1"],
                eval_prompts=eval_prompts()[:2], train_prompts=train_prompts()[:2], eval_seeds=1,
                eval_rewards=["brightness", "background"], calibration_iterations=1)


def test_a_run_goes_on_until_every_budget_is_reached_and_saves_at_every_crossing(tiny_plan, tmp_path):
    method, rate = tiny_plan.methods[1], 0.001  # 1 ms per evaluation: the seconds budget is 500 evaluations
    run = runs.train_run(tiny_plan, "brightness", method, 0, tmp_path, rate, progress=False)
    records = [json.loads(line) for line in (runs.run_dir(tmp_path, "brightness", method, 0) / "records.jsonl").open()]
    counts = [runs.evaluations(r) for r in records]
    assert run["iterations"] == len(records) and run["evaluations"] == sum(counts)
    assert sum(counts) >= 500 and sum(counts[:-1]) < 500  # stopped at the last budget reached, not later
    expected = crossings(counts, rate, tiny_plan, PROTOCOLS)
    saved = {tuple(point): c["iteration"] for c in run["checkpoints"] for point in c["points"]}
    assert saved == expected and None not in saved.values()
    for c in run["checkpoints"]:
        assert (runs.run_dir(tmp_path, "brightness", method, 0) / c["checkpoint"] / "trainable.safetensors").exists()
        assert c["calibrated_seconds"] == pytest.approx(c["evaluations"] * rate)


def test_a_killed_run_resumes_from_its_checkpoint_to_the_uninterrupted_result(tiny_plan, tmp_path, monkeypatch):
    from engine.training.trainer import Trainer

    method = tiny_plan.methods[0]
    whole = runs.train_run(tiny_plan, "brightness", method, 0, tmp_path / "whole", 0.0005, progress=False)
    assert len(whole["checkpoints"]) >= 2
    calls, real = [], Trainer.iteration
    first = whole["checkpoints"][0]["iteration"]

    def dies_after_the_first_checkpoint(self, it):
        if it == first:  # the iteration after the first checkpoint
            raise KeyboardInterrupt
        calls.append(it)
        return real(self, it)

    monkeypatch.setattr(Trainer, "iteration", dies_after_the_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        runs.train_run(tiny_plan, "brightness", method, 0, tmp_path / "killed", 0.0005, progress=False)
    assert runs.finished(tmp_path / "killed", "brightness", method, 0) is None
    monkeypatch.setattr(Trainer, "iteration", lambda self, it: calls.append(it) or real(self, it))
    calls.clear()
    resumed = runs.train_run(tiny_plan, "brightness", method, 0, tmp_path / "killed", 0.0005, progress=False)
    assert calls[0] == first  # from the checkpoint, not from scratch
    strip = lambda run: [{k: v for k, v in c.items() if k != "seconds"} for c in run["checkpoints"]]  # noqa: E731
    assert strip(resumed) == strip(whole) and resumed["evaluations"] == whole["evaluations"]
    final = whole["checkpoints"][-1]["checkpoint"] + "/trainable.safetensors"
    a, b = (load_file(runs.run_dir(root, "brightness", method, 0) / final) for root in (tmp_path / "whole", tmp_path / "killed"))
    assert all((a[k] == b[k]).all() for k in a)  # resume is exact
    with pytest.raises(ValueError, match="different plan"):  # another calibration is another run
        runs.train_run(tiny_plan, "brightness", method, 0, tmp_path / "killed", 0.002, progress=False)


def row(method, seed, held, train, evaluations=100, iteration=5, reward="adherence", points=(("iterations", 1.0),),
        preference=(0.3, 0.3)):
    return {"reward": reward, "method": method, "label": method, "seed": seed, "iteration": iteration,
            "evaluations": evaluations, "seconds": evaluations / 10, "calibrated_seconds": evaluations / 10,
            "points": [list(p) for p in points],
            "scores": {"held_out": {"adherence": held, "preference": preference[1]},
                       "train": {"adherence": train, "preference": preference[0]}}}


BASE = {"reward": None, "method": "base", "label": "builtin (base)", "seed": None, "iteration": 0, "evaluations": 0,
        "seconds": 0.0, "calibrated_seconds": 0.0, "points": [],
        "scores": {"held_out": {"adherence": 0.70, "preference": 0.30}, "train": {"adherence": 0.80, "preference": 0.30}}}


def table_plan(methods=("dancegrpo", "diffusionnft", "g2rpo-L123")) -> Plan:
    return Plan(methods=[BY_KEY[k] for k in methods], tracks=[Track("adherence", tuple(methods), ("iterations",)),
                Track("preference", tuple(methods), ("iterations",))], seeds=list(range(5)),
                budgets={"iterations": 10}, fractions=[0.5, 1.0], overrides=[], eval_prompts=["p"], train_prompts=["q"],
                eval_seeds=1, eval_rewards=["adherence", "preference"], target=0.05)


def test_differences_carry_intervals_and_the_verdict_they_support():
    rows = [BASE] + [row("dancegrpo", s, 0.70 + 0.002 * s, 0.80) for s in range(5)] \
        + [row("diffusionnft", s, 0.80 + 0.002 * s, 0.86 + 0.002 * s) for s in range(5)] \
        + [row("g2rpo-L123", s, 0.68 + 0.01 * s, 0.80 - 0.02 - 0.001 * s) for s in range(5)]
    lines = {line.split(" | ")[0][2:]: line for line in differences_table(table_plan(), rows, "adherence",
                                                                             "iterations").splitlines()}
    assert lines["DiffusionNFT"].count("**better**") == 4  # held-out and training, against the base and DanceGRPO
    assert "no difference detectable" in lines["G²RPO, Λ = {1,2,3}"].split(" | ")[1]  # held-out: straddles 0
    assert lines["G²RPO, Λ = {1,2,3}"].split(" | ")[3].endswith("**worse**")  # training prompts: below the base
    assert lines["DanceGRPO"].split(" | ")[2] == "—"  # no difference from itself
    text = verdicts_markdown(table_plan(), rows)
    assert "G²RPO's Table 1: G²RPO above DanceGRPO: held-out Δ" in text and "DiffusionNFT against the base model" in text
    # G²RPO against DiffusionNFT: 0.12 below on held-out prompts, 0.08 below on training prompts, on every seed
    nft = next(line for line in text.splitlines() if line.startswith("- G²RPO above DiffusionNFT"))
    assert nft.count(": worse") == 2, nft


def test_the_cost_to_target_interpolates_each_run_and_counts_runs_that_never_reach_it():
    points = lambda f: (("iterations", f),)  # noqa: E731
    rows = [BASE]
    for s in range(5):  # DanceGRPO reaches 0.75 at 150 evaluations (half-way between 100 and 200), NFT at 50
        rows += [row("dancegrpo", s, 0.72, 0.8, 100, 5, points=points(0.5)), row("dancegrpo", s, 0.78, 0.8, 200, 10, points=points(1.0)),
                 row("diffusionnft", s, 0.80, 0.8, 100, 5, points=points(0.5)), row("diffusionnft", s, 0.80, 0.8, 200, 10, points=points(1.0)),
                 row("g2rpo-L123", s, 0.71, 0.8, 100, 5, points=points(0.5)), row("g2rpo-L123", s, 0.72, 0.8, 200, 10, points=points(1.0))]
    lines = {line.split(" | ")[0][2:]: line.split(" | ") for line in target_table(table_plan(), rows).splitlines() if "|" in line}
    assert lines["DanceGRPO"][1:3] == ["5 of 5", "150 [150, 150]"]
    assert lines["DiffusionNFT"][1:3] == ["5 of 5", "50 [50, 50]"] and lines["DiffusionNFT"][4].startswith("3.00")
    assert lines["G²RPO, Λ = {1,2,3}"][1:3] == ["0 of 5", "never"]


def test_the_hacking_table_flags_a_learned_reward_that_rises_while_the_verifiers_fall():
    rows = [BASE] + [row(k, s, 0.70 - drop, 0.80 - drop + 0.002 * (s - 2), reward="preference",
                         preference=(0.40 + 0.002 * s, 0.3)) for k, drop in (("dancegrpo", 0.05), ("diffusionnft", 0.0))
                     for s in range(5)]
    plan = table_plan(("dancegrpo", "diffusionnft"))
    lines = {line.split(" | ")[0][2:]: line for line in hacking_table(plan, rows).splitlines()}
    assert "**hacking**" in lines["DanceGRPO"]
    assert "learned reward (training prompts) rises, verifiers no difference detectable" in lines["DiffusionNFT"]


@pytest.mark.slow  # about a minute: a second full invocation of a tiny study
def test_a_second_invocation_skips_finished_runs_and_scores(tiny_plan, tmp_path, monkeypatch):
    from engine import evaluate as engine_evaluate
    from engine.study.__main__ import run_plan
    from engine.training.trainer import Trainer

    rows = run_plan(tiny_plan, tmp_path, progress=False)
    assert {r["method"] for r in rows} == {"base", "g2rpo-L12", "dancegrpo"}
    for name in ("table.md", "verdicts.md", "results.json", "results.csv", "curves.html", "curves.png", "study.json"):
        assert (tmp_path / name).exists(), name
    before = (tmp_path / "table.md").read_text()

    def nothing_to_redo(*args, **kwargs):
        raise AssertionError("finished work was redone")

    monkeypatch.setattr(Trainer, "__init__", nothing_to_redo)
    monkeypatch.setattr(engine_evaluate, "sample_images", nothing_to_redo)
    assert run_plan(tiny_plan, tmp_path, progress=False) == rows
    assert (tmp_path / "table.md").read_text() == before  # the same seeds give the same table
    study = json.loads((tmp_path / "study.json").read_text())
    assert len(study["invocations"]) == 2
    assert "weights_sha256" in study and "cwd" not in study  # committed: names the base, no machine's folder

    changed = Plan(**{**tiny_plan.__dict__, "budgets": {**tiny_plan.budgets, "iterations": 3}})  # never mixed
    with pytest.raises(ValueError, match="different plan"):
        run_plan(changed, tmp_path, progress=False)
    # a setting that only changes what a run writes beside its results does not make it another run
    spec_file = next(tmp_path.rglob("spec.json"))
    spec = json.loads(spec_file.read_text())
    spec["config"]["train"]["branch_every"] = 12345
    spec_file.write_text(json.dumps(spec))
    assert run_plan(tiny_plan, tmp_path, progress=False) == rows
    spec["config"]["train"]["learning_rate"] *= 2  # ... while one that changes training does
    spec_file.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="different plan"):
        run_plan(tiny_plan, tmp_path, progress=False)


def test_the_study_refuses_to_mix_runs_trained_from_different_weights(tiny_plan, tmp_path, monkeypatch):
    from engine.models import builtin

    plan = Plan(**{**tiny_plan.__dict__, "overrides": ["model.name=builtin", *tiny_plan.overrides[1:]],
                   "budgets": {"iterations": 1}, "tracks": [Track("brightness", ("dancegrpo",), ("iterations",))]})
    method = BY_KEY["dancegrpo"]
    run = runs.train_run(plan, "brightness", method, 0, tmp_path, None, progress=False)
    assert run["weights_sha256"] == builtin.weights_sha256() and len(run["weights_sha256"]) == 64
    monkeypatch.setattr(builtin, "weights_sha256", lambda folder=None: "0" * 64)  # the committed base changed
    with pytest.raises(ValueError, match="other model weights"):
        runs.train_run(plan, "brightness", method, 0, tmp_path, None, progress=False)
    from engine.study.evaluate import settings

    assert settings(plan, run_config(plan, "brightness", method, 0))["weights_sha256"] == "0" * 64  # rescored


@pytest.mark.slow
def test_quick_study_end_to_end(tmp_path):
    """The whole quick study as a user runs it (a few minutes on 2 cores)."""
    out = tmp_path / "study"
    done = subprocess.run([sys.executable, "-m", "engine.study", "--quick", "--no-progress", "--out", str(out)],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("table.md", "verdicts.md", "results.json", "results.csv", "curves.html", "curves.png", "study.json"):
        assert (out / name).exists(), name
    table = (out / "table.md").read_text()
    for label in ["builtin (base)", *[m.label for m in METHODS if m.key in MAIN_METHODS]]:
        assert f"| {label} |" in table, label
    assert "Reward hacking" in table and "The cost to reach" in table
    results = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in results["rows"]} == {"base", *MAIN_METHODS}


def test_a_calibration_is_found_again_when_only_result_neutral_settings_differ():
    import json as _json

    from engine.study.calibration import _same_run

    config = {"train": {"learning_rate": 1e-3, "log_with": [], "branch_every": 10}, "algorithm": {"name": "g2rpo"}}
    older = {"train": {"learning_rate": 1e-3, "log_with": ["tensorboard"]}, "algorithm": {"name": "g2rpo"}}
    assert _same_run(_json.dumps([config, 2]), _json.dumps([older, 2]))
    assert not _same_run(_json.dumps([config, 2]), _json.dumps([older, 3]))  # other timed iterations
    faster = {**older, "train": {**older["train"], "learning_rate": 2e-3}}
    assert not _same_run(_json.dumps([config, 2]), _json.dumps([faster, 2]))
