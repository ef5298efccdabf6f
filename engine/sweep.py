"""Sweep training settings on the built-in model and score each run on held-out prompts:

    python -m engine.sweep --plan configs/sweep.yaml --out runs/sweep

A plan (YAML) names a base config, the iterations every run trains, the evaluation seeds, and
entries: each a name and the `key=value` overrides that make it differ from the base. Every run
trains with its own folder under --out, then its final LoRA and the base model are scored by
the exact verifiers (and the learned preference) on the held-out prompts with `eval_seeds` noise
seeds per prompt, and on the training prompts with one, by engine.evaluate's sampler: every run
sees the same noise. The sweep resumes: a finished run is not retrained, a killed one resumes from
its last checkpoint, and a scored one is not rescored. It writes `results.json` and `table.md`.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from engine.config import ConfigError, load_config, read_yaml
from engine.world import eval_prompts

REWARDS = ("adherence", "shape", "count", "colour", "background", "preference")


def load_plan(path: str) -> dict:
    plan = read_yaml(path)
    for key in ("base", "iterations", "eval_seeds", "entries"):
        if key not in plan:
            raise ConfigError(f"{path}: the plan needs '{key}'")
    names = [e["name"] for e in plan["entries"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: entry names repeat")
    return plan


def entry_config(plan: dict, entry: dict):
    overrides = [f"train.iterations={plan['iterations']}", "train.eval_every=0", "train.sample_every=1000000",
                 f"train.checkpoint_every={plan.get('checkpoint_every', 10)}", *plan.get("set", []), *entry["set"]]
    return load_config(plan["base"], overrides)


def evaluate(cfg, lora: Path | None, plan: dict, rewards: list) -> dict:
    """engine.evaluate's table row, on the held-out prompts and on the training prompts."""
    from engine.evaluate import evaluate as score, load_with_lora, prompt_set

    model = load_with_lora(cfg.model, str(lora) if lora else None).eval()
    return {"eval": score(model, prompt_set("eval"), rewards, plan["eval_seeds"], progress=False),
            "train": score(model, prompt_set("train"), rewards, 1, progress=False)}


def run_entry(plan: dict, entry: dict, out: Path, rewards: list) -> dict:
    """Train (or finish) and score one entry; its result.json makes a re-run skip it."""
    from engine.training.checkpoint import latest_checkpoint
    from engine.training.records import read_records
    from engine.training.trainer import Trainer

    folder = out / entry["name"]
    cfg = entry_config(plan, entry)
    result_file = folder / "result.json"
    if result_file.exists():
        saved = json.loads(result_file.read_text())
        if saved["config"] == cfg.to_dict():
            return saved
    Trainer(cfg, folder, resume=True).run(progress=True)
    records = read_records(folder / "records.jsonl")
    result = {"name": entry["name"], "set": entry["set"], "config": cfg.to_dict(),
              "minutes": sum(r["time"]["total"] for r in records) / 60,
              "policy_movement": records[-1].get("policy_movement"),
              "training_reward_first5": mean_reward(records[:5]), "training_reward_last5": mean_reward(records[-5:]),
              "scores": evaluate(cfg, latest_checkpoint(folder), plan, rewards)}
    result_file.write_text(json.dumps(result, indent=1))
    return result


def mean_reward(records: list[dict]) -> float:
    """The training rewards' means (summed over reward models) averaged over these iterations."""
    return sum(sum(v["mean"] for v in r["reward"].values()) for r in records) / len(records)


def table(plan: dict, base: dict, results: list[dict], command: str) -> str:
    lines = [f"# Sweep: `{command}`", "",
             f"Each run: `{plan['base']}` with the overrides shown, {plan['iterations']} iterations, seed "
             f"{plan.get('seed', 0)}. Scores: mean over the {len(eval_prompts())} "
             f"held-out prompts x {plan['eval_seeds']} noise seeds (the same noise for every row), and the training "
             "prompts x 1 seed. Minutes: training time on this machine. Movement: relative change of the velocity "
             "against the base on the probe batch after the last iteration.", "",
             "| run | settings | held-out adherence | Δ vs base | held-out background | held-out colour | held-out shape "
             "| held-out count | train adherence | training reward (first 5 → last 5 it.) | movement | minutes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
             f"| base | — | {base['eval']['adherence']:.3f} | — | {base['eval']['background']:.3f} "
             f"| {base['eval']['colour']:.3f} | {base['eval']['shape']:.3f} | {base['eval']['count']:.3f} "
             f"| {base['train']['adherence']:.3f} | — | — | — |"]
    for r in sorted(results, key=lambda r: -r["scores"]["eval"]["adherence"]):
        e, t = r["scores"]["eval"], r["scores"]["train"]
        lines.append(f"| {r['name']} | {'<br>'.join(f'`{s}`' for s in r['set']) or 'the base config'} "
                     f"| {e['adherence']:.3f} | {e['adherence'] - base['eval']['adherence']:+.3f} | {e['background']:.3f} "
                     f"| {e['colour']:.3f} | {e['shape']:.3f} "
                     f"| {e['count']:.3f} | {t['adherence']:.3f} "
                     f"| {r['training_reward_first5']:.3f} → {r['training_reward_last5']:.3f} "
                     f"| {r['policy_movement']:.3f} | {r['minutes']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", default="configs/sweep.yaml")
    p.add_argument("--out", default="runs/sweep")
    p.add_argument("--only", nargs="*", help="run only these entries")
    args = p.parse_args(argv)
    try:
        plan = load_plan(args.plan)
        unknown = sorted(set(args.only or ()) - {e["name"] for e in plan["entries"]})
        if unknown:
            raise ConfigError(f"--only: no entries named {', '.join(unknown)} in {args.plan}")
        entries = [e for e in plan["entries"] if not args.only or e["name"] in args.only]
        for entry in plan["entries"]:
            entry_config(plan, entry)  # every entry is valid before anything trains
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    torch.set_num_threads(plan.get("threads", 2))
    from engine.rewards import build_reward

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rewards = [build_reward(name) for name in REWARDS]
    base_file = out / "base.json"
    if not base_file.exists():
        base_file.write_text(json.dumps(evaluate(entry_config(plan, entries[0]), None, plan, rewards), indent=1))
    base = json.loads(base_file.read_text())
    results, start = [], time.time()
    for entry in tqdm(entries, desc="sweep"):
        results.append(run_entry(plan, entry, out, rewards))
    command = "python -m engine.sweep " + " ".join(argv if argv is not None else sys.argv[1:])
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    meta = {"command": command, "commit": commit, "machine": f"{platform.processor() or platform.machine()}, "
            f"{torch.get_num_threads()} torch threads, torch {torch.__version__}", "date": time.strftime("%Y-%m-%d"),
            "minutes": (time.time() - start) / 60}
    (out / "results.json").write_text(json.dumps({"meta": meta, "base": base, "runs": results}, indent=1))
    (out / "table.md").write_text(table(plan, base, results, command)
                                  + f"\nCommit {commit}, {meta['machine']}, {meta['date']}.\n")
    print((out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
