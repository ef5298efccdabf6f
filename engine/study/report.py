"""The study's outputs, rebuilt from the cached runs and scores on every invocation:
results.json / results.csv (every evaluated model), table.md, verdicts.md, curves.html / curves.png,
cost.md and study.json.
"""
from __future__ import annotations

import csv
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from engine.study.evaluate import SPLITS, base_cache, base_config, cached_scores
from engine.study.plan import Plan, weights_sha256
from engine.study.runs import finished, write_json

REPO = Path(__file__).resolve().parents[2]


def result_rows(plan: Plan, root: Path) -> list[dict]:
    """The base model, then every evaluated checkpoint of every finished run in the plan."""
    rows = []
    if base_cache(root).exists():
        scores = json.loads(base_cache(root).read_text())["scores"]
        rows.append({"reward": None, "method": "base", "label": f"{base_config(plan).model.name} (base)", "seed": None,
                     "iteration": 0, "evaluations": 0, "seconds": 0.0, "calibrated_seconds": 0.0, "points": [],
                     "scores": scores})
    for seed in plan.seeds:
        for track in plan.tracks:
            for key in track.methods:
                method = plan.method(key)
                run = finished(root, track.reward, method, seed)
                for entry in (run or {}).get("checkpoints", []):
                    scores = cached_scores(plan, root, track.reward, method, seed, entry)
                    if scores is not None:
                        rows.append({"reward": track.reward, "method": key, "label": method.label, "seed": seed,
                                     **{k: entry[k] for k in ("iteration", "evaluations", "seconds",
                                                              "calibrated_seconds", "points")},
                                     "scores": scores})
    return rows


def write_results(root: Path, plan: Plan, rows: list[dict]) -> None:
    write_json(root / "results.json", {"budgets": plan.budgets, "seeds": plan.seeds, "rewards": plan.eval_rewards,
                                       "rows": rows})
    fields = ["reward", "method", "label", "seed", "iteration", "evaluations", "seconds", "calibrated_seconds"]
    scores = [f"{split}/{name}" for split in SPLITS for name in plan.eval_rewards]
    with open(root / "results.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, [*fields, "points", *scores])
        writer.writeheader()
        for row in rows:
            writer.writerow({**{k: row[k] for k in fields}, "points": " ".join(f"{p}@{f:g}" for p, f in row["points"]),
                             **{f"{split}/{name}": row["scores"][split][name] for split in SPLITS
                                for name in plan.eval_rewards}})


def machine() -> dict:
    import torch

    cpu = platform.processor()
    try:  # /proc/cpuinfo names the CPU model on Linux; platform.processor() often does not
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "platform": platform.platform()}


def git_state() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def machine_line(info: dict) -> str:
    return (f"Measured on {info['cpu']}, {info['cores']} cores ({info['torch_threads']} torch threads), "
            f"torch {info['torch']}" + (f", {info['cuda']}" if info["cuda"] else ""))


def write_study(root: Path, plan: Plan, started: str, finished_at: str, seconds: float, info: dict,
                git: dict) -> None:
    """study.json: this invocation (command, machine, date, the commit it started from) appended to the earlier
    ones, with the SHA-256 of the weights every run started from. No absolute path: it is committed."""
    path = root / "study.json"
    earlier = json.loads(path.read_text()).get("invocations", []) if path.exists() else []
    now = {"command": shlex.join(["python", "-m", "engine.study", *sys.argv[1:]]),
           "weights_sha256": weights_sha256(base_config(plan)), "started": started, "finished": finished_at,
           "seconds": round(seconds, 1), "machine": info, "git": git}
    plan_summary = {k: v for k, v in plan.to_dict().items() if k != "eval_prompts"}
    plan_summary["eval_prompts"] = len(plan.eval_prompts)
    write_json(path, {**now, "plan": plan_summary, "invocations": [*earlier, now]})


def write_reports(root: Path, plan: Plan, cost: list[tuple[dict, dict]], info: dict) -> list[dict]:
    from engine.study.calibration import calibrations
    from engine.study.cost import cost_markdown
    from engine.study.curves import write_curves
    from engine.study.tables import table_markdown, verdicts_markdown

    rows = result_rows(plan, root)
    write_results(root, plan, rows)
    (root / "table.md").write_text(table_markdown(plan, rows, calibrations(root), machine_line(info)))
    (root / "verdicts.md").write_text(verdicts_markdown(plan, rows))
    write_curves(root, plan, rows)
    if cost:
        (root / "cost.md").write_text(cost_markdown(plan, cost, machine_line(info)))
    return rows
