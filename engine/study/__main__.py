"""Does G²RPO beat the baselines on the built-in model, per model evaluation and per second?

    python -m engine.study --quick --out runs/study-quick      # ~2 minutes on 2 CPU cores
    python -m engine.study --out runs/study                    # ~45 minutes on 2 CPU cores

Trains G²RPO (Λ = {1}, {1,2}, {1,2,3}), DanceGRPO, Flow-GRPO and MixGRPO on `preference` under the
same budget of model evaluations and the same seeds (G = 8 for all; plan.py says why), scores every
checkpoint on the held-out prompts with every reward, and writes table.md, results.json/csv,
curves.html, cost.md and study.json.
Run the same command again after a kill: finished runs and scores are skipped, a partial run resumes
from its last checkpoint.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from engine.study.plan import METHODS, Plan, build_plan


def run_plan(plan: Plan, root: Path, progress: bool = True) -> list[dict]:
    """Everything the plan asks for, skipping what is already done; returns the result rows."""
    from engine.study.cost import cost_points, measure_cached
    from engine.study.evaluate import score_base, score_checkpoint
    from engine.study.report import machine, write_reports, write_study
    from engine.study.runs import train_run

    root.mkdir(parents=True, exist_ok=True)
    started, clock, info = datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter(), machine()
    points = cost_points(plan)
    total = 1 + len(plan.seeds) * len(plan.methods) * (1 + len(plan.fractions)) + len(points)
    bar = tqdm(total=total, desc="study", position=0, disable=not progress, dynamic_ncols=True)
    bar.set_postfix_str("scoring the base model")
    score_base(plan, root)
    bar.update()
    for seed in plan.seeds:  # seed-major: an interrupted study already compares every method
        for method in plan.methods:
            bar.set_postfix_str(f"training {method.key} seed {seed}")
            run = train_run(plan, method, seed, root, progress)
            bar.update()
            for entry in run["checkpoints"]:
                bar.set_postfix_str(f"scoring {method.key} seed {seed} at {entry['fraction']:g} of the budget")
                score_checkpoint(plan, root, method, seed, entry)
                bar.update()
            write_reports(root, plan, [], info)  # partial tables while the study goes on
    cost = []
    for point in points:
        bar.set_postfix_str(f"timing {point['preset']} at {point['sweep']} = {point['value']}")
        cost.append((point, measure_cached(point, root)))
        bar.update()
    bar.close()
    rows = write_reports(root, plan, cost, info)
    write_study(root, plan, started, datetime.now(timezone.utc).isoformat(timespec="seconds"),
                time.perf_counter() - clock, info)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/study", help="the study's folder (re-use it to resume)")
    parser.add_argument("--quick", action="store_true", help="2 seeds, a tiny budget, fewer prompts: minutes")
    parser.add_argument("--seeds", type=int, help="seeds per method (default 3; --quick 2)")
    parser.add_argument("--budget", type=int, help="model evaluations per run (default: --reference-iterations "
                        "iterations of G²RPO with Λ = {1,2,3})")
    parser.add_argument("--reference-iterations", type=int, help="default 40; --quick 2")
    parser.add_argument("--methods", nargs="+", choices=[m.key for m in METHODS], help="default: all of them")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every method alike (e.g. algorithm.group_size=12, the paper's G)")
    parser.add_argument("--no-cost", action="store_true", help="skip the cost table")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    from engine.config import ConfigError

    start = time.perf_counter()
    try:
        plan = build_plan(args.quick, args.seeds, args.budget, args.reference_iterations, args.overrides,
                          args.methods, cost=not args.no_cost)
        print(f"{len(plan.methods)} methods x {len(plan.seeds)} seeds, {plan.budget:,} model evaluations per run, "
              f"checkpoints at {plan.fractions} of it; {len(plan.eval_prompts)} held-out prompts x "
              f"{plan.eval_seeds} seed(s)", flush=True)
        run_plan(plan, Path(args.out), progress=not args.no_progress)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    print((out / "table.md").read_text())
    print(f"done in {time.perf_counter() - start:.0f} s; outputs in {out}: table.md, results.json, results.csv, "
          f"curves.html{', cost.md' if plan.cost_sweeps else ''}, study.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
