"""Benchmark the engine on the built-in small model: `python -m engine.bench`.

For G²RPO, each baseline and DiffusionNFT (their default configs, same model, same prompts), prints model
evaluations per iteration, seconds per iteration, the share of the iteration spent inside model
calls, and how much faster the batched rollout is than a one-member-at-a-time rollout of the same
trajectories (same seeds; the largest difference between the two outputs is printed too).
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from engine.config import ALGORITHMS, load_config
from engine.models.base import VelocityRunner
from engine.rollout import RolloutNoise
from engine.trainer import Trainer


def time_rollout(trainer: Trainer, micro_batch: int, seed: int):
    """One rollout with the given micro-batch; returns (seconds, rollout)."""
    runner = VelocityRunner(trainer.model, micro_batch, trainer.accelerator.autocast)
    cond = trainer.model.encode_prompts(trainer.prompt_pool[:1])
    start = time.perf_counter()
    with torch.no_grad():
        rollout = trainer.algorithm.rollout(runner, cond, RolloutNoise.seeded(seed, 0, 0, 1), 0)
    return time.perf_counter() - start, rollout


def max_difference(a, b) -> float:
    diffs = [(a.images - b.images).abs().max()]
    diffs += [(ta.logp_old - tb.logp_old).abs().max() for ta, tb in zip(a.transitions, b.transitions, strict=True)]
    return float(torch.stack(diffs).max())


def bench(name: str, iterations: int, overrides: list[str]) -> dict:
    cfg = load_config(f"configs/{name}.yaml", [f"train.iterations={iterations + 1}", "train.checkpoint_every=100000",
                                               "train.sample_every=100000", *overrides])
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(cfg, out, sink=None)
        trainer.sink = None
        trainer.iteration(0)  # warm-up, not timed
        records = [trainer.iteration(i) for i in range(1, iterations + 1)]
        batched_s, batched = time_rollout(trainer, cfg.train.micro_batch, seed=1)
        single_s, single = time_rollout(trainer, 1, seed=1)
    total = sum(r["time"]["total"] for r in records)
    return {
        "algorithm": name,
        "evals_rollout": records[-1]["model_evaluations"]["rollout"],
        "evals_train": records[-1]["model_evaluations"]["train"],
        "s_per_iter": total / iterations,
        "model_share": sum(r["time"]["model_calls"] for r in records) / total,
        "batched_s": batched_s,
        "single_s": single_s,
        "speedup": single_s / batched_s,
        "max_diff": max_difference(batched, single),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m engine.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per algorithm")
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; built-in model, 1 prompt per iteration")
    header = f"{'algorithm':<10} {'evals/iter (rollout+train)':>27} {'s/iter':>8} {'in model':>9} " \
             f"{'batched rollout':>16} {'one-at-a-time':>14} {'speed-up':>9} {'max |diff|':>11}"
    print(header)
    for name in args.algorithms:
        r = bench(name, args.iterations, args.overrides)
        evals = f"{r['evals_rollout']} + {r['evals_train']}"
        print(f"{name:<10} {evals:>27} {r['s_per_iter']:>8.3f} {r['model_share']:>8.1%} {r['batched_s']:>15.3f}s "
              f"{r['single_s']:>13.3f}s {r['speedup']:>8.1f}x {r['max_diff']:>11.2e}", flush=True)


if __name__ == "__main__":
    main()
