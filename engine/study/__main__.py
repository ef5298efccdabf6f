"""Does G²RPO beat the baselines on the built-in model: at equal iterations, equal model evaluations, equal time?

    python -m engine.study --quick --out runs/study-quick      # a few minutes on 2 CPU cores
    python -m engine.study --out runs/study                    # about 80 minutes on 2 CPU cores

Trains G²RPO (Λ = {1}, {1,2,3}), DanceGRPO, Flow-GRPO, MixGRPO, E-GRPO and DiffusionNFT, each from its
preset, on the exact verifier `adherence` with 5 seeds until every protocol's budget is reached (plan.py:
iterations, model evaluations, calibrated seconds), and four of them on the learned `preference` under the
paper's protocol (the reward-hacking track). Every checkpoint is scored with every reward on the held-out
prompts and on training prompts; tables.py turns the scores into means and 95% bootstrap intervals over
seeds, differences from the base and from DanceGRPO with verdicts, the cost to reach a target adherence,
and the hacking table. Outputs: table.md, verdicts.md, results.json/csv, curves.html/png, study.json.
Run the same command again after a kill: finished runs and scores are skipped, a partial run resumes
from its last checkpoint, and the tables come out the same.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from engine.study.plan import MAIN_METHODS, METHODS, PROTOCOLS, Plan, build_plan


def run_plan(plan: Plan, root: Path, progress: bool = True) -> list[dict]:
    """Everything the plan asks for, skipping what is already done; returns the result rows."""
    from engine.study.calibration import seconds_per_evaluation
    from engine.study.cost import cost_points, measure_cached
    from engine.study.evaluate import score_base, score_checkpoint
    from engine.study.report import git_state, machine, write_reports, write_study
    from engine.study.runs import finished, train_run

    root.mkdir(parents=True, exist_ok=True)
    started, clock, info = datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter(), machine()
    git = git_state()  # the code the runs are trained with
    points = cost_points(plan)
    timed = [(t.reward, plan.method(k)) for t in plan.tracks if "seconds" in t.protocols for k in t.methods]
    runs = [(t, plan.method(k)) for t in plan.tracks for k in t.methods]
    total = 1 + len(timed) + len(plan.seeds) * len(runs) * 2 + len(points)
    bar = tqdm(total=total, desc="study", position=0, disable=not progress, dynamic_ncols=True)
    bar.set_postfix_str("scoring the base model")
    score_base(plan, root)
    bar.update()
    rates = {}
    for reward, method in timed:  # the seconds protocol's clock, before any run needs it
        bar.set_postfix_str(f"calibrating {method.key} on {reward}")
        rates[reward, method.key] = seconds_per_evaluation(plan, root, reward, method)
        bar.update()
    for seed in plan.seeds:  # seed-major: an interrupted study already compares every method
        fresh = False
        for track, method in runs:
            fresh |= finished(root, track.reward, method, seed) is None
            bar.set_postfix_str(f"training {method.key} on {track.reward}, seed {seed}")
            run = train_run(plan, track.reward, method, seed, root, rates.get((track.reward, method.key)), progress)
            bar.update()
            bar.set_postfix_str(f"scoring {method.key} on {track.reward}, seed {seed}")
            for entry in run["checkpoints"]:
                score_checkpoint(plan, root, track.reward, method, seed, entry)
            bar.update()
        if fresh and seed != plan.seeds[-1]:
            try:  # partial tables after each new seed; a failure here must not stop the runs
                write_reports(root, plan, [], info)
            except Exception as err:  # noqa: BLE001 (the final write_reports below raises)
                tqdm.write(f"warning: the partial report failed ({type(err).__name__}: {err}); training goes on")
    cost = []
    for point in points:
        bar.set_postfix_str(f"timing {point['preset']} at {point['sweep']} = {point['value']}")
        cost.append((point, measure_cached(point, root)))
        bar.update()
    bar.close()
    rows = write_reports(root, plan, cost, info)
    write_study(root, plan, started, datetime.now(timezone.utc).isoformat(timespec="seconds"),
                time.perf_counter() - clock, info, git)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/study", help="the study's folder (re-use it to resume)")
    parser.add_argument("--quick", action="store_true", help="2 seeds, a tiny budget, fewer prompts: minutes")
    parser.add_argument("--seeds", type=int, help="seeds per method (default 5; --quick 2)")
    parser.add_argument("--iterations", type=int, help="the paper protocol's budget (default 40; --quick 2)")
    parser.add_argument("--evaluations", type=int, help="the equal-evaluations budget (default 120000; --quick 2500)")
    parser.add_argument("--seconds", type=float, help="the equal-time budget (default 160; --quick 8)")
    parser.add_argument("--methods", nargs="+", choices=[m.key for m in METHODS],
                        help=f"default: {' '.join(MAIN_METHODS)}")
    parser.add_argument("--hacking", action=argparse.BooleanOptionalAction, default=None,
                        help="the preference (reward-hacking) track (default: in --quick, not in the full study)")
    parser.add_argument("--target", type=float, default=0.02,
                        help="the evaluations-to-target table's held-out adherence, above the base's (default 0.02)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every method alike (e.g. algorithm.group_size=12, the paper's G)")
    parser.add_argument("--cost", action="store_true", help="also time the cost table (cost.md; about 10 minutes)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    from engine.config import ConfigError

    start = time.perf_counter()
    try:
        budgets = {k: v for k in PROTOCOLS if (v := getattr(args, k)) is not None}
        plan = build_plan(args.quick, args.seeds, budgets, args.overrides, args.methods, hacking=args.hacking,
                          cost=args.cost, target=args.target)
        tracks = "; ".join(f"{t.reward}: {len(t.methods)} methods under {', '.join(t.protocols)}" for t in plan.tracks)
        print(f"{tracks}; {len(plan.seeds)} seeds; budgets {plan.budgets}, checkpoints at {plan.fractions} of each; "
              f"{len(plan.eval_prompts)} held-out prompts x {plan.eval_seeds} seed(s), {len(plan.train_prompts)} "
              "training prompts", flush=True)
        run_plan(plan, Path(args.out), progress=not args.no_progress)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    print((out / "table.md").read_text())
    print((out / "verdicts.md").read_text())
    print(f"done in {time.perf_counter() - start:.0f} s; outputs in {out}: table.md, verdicts.md, results.json, "
          f"results.csv, curves.html, curves.png{', cost.md' if plan.cost_sweeps else ''}, study.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
