"""Benchmark the engine on the built-in small model: `python -m engine.tools.bench [--no-compile]`.

For G²RPO, each baseline and DiffusionNFT (their default configs, same model, same prompts), prints model
evaluations per iteration, seconds per iteration, the share of the iteration spent inside model
calls, and how much faster the batched rollout is than a one-member-at-a-time rollout of the same
trajectories (same seeds; the largest difference between the two outputs is printed too).

Then the model call itself: G²RPO's rollout under torch.no_grad and under torch.inference_mode (what
the trainer uses), eager and after torch.compile (train.compile), from the same seed: the first
call (compilation included: shorter when torch's inductor cache on disk already holds the kernels),
the median of the next ones, and the largest difference from eager no_grad's images and
log-probabilities.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from engine.config import ALGORITHMS, load_config
from engine.models.base import VelocityRunner
from engine.method.rollout import RolloutNoise
from engine.training.trainer import Trainer


def time_rollout(trainer: Trainer, micro_batch: int, seed: int, mode=torch.no_grad):
    """One rollout with the given micro-batch under `mode`; returns (seconds, rollout)."""
    runner = VelocityRunner(trainer.model, micro_batch, trainer.accelerator.autocast)
    cond = trainer.model.encode_prompts(trainer.prompt_pool[:1])
    start = time.perf_counter()
    with mode():
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


def model_call(repeats: int, compile_: bool, overrides: list[str]) -> list[dict]:
    """G²RPO's rollout (default config, one prompt) per (compilation, grad mode), same seed. The
    compiled transformer (torch.compile, sharing the weights) and the eager one take turns as the
    model's transformer, every variant once per round: a busy machine slows them alike."""
    cfg = load_config("configs/g2rpo.yaml", ["train.checkpoint_every=100000", "train.sample_every=100000", *overrides])
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(cfg, out, sink=None)
        eager = trainer.model.transformer
        transformers = {"eager": eager, **({"compiled": torch.compile(eager)} if compile_ else {})}
        modes = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}
        variants = [(t, m) for t in transformers for m in modes]

        def run(variant):
            trainer.model.use_wrapped_transformer(transformers[variant[0]])
            return time_rollout(trainer, cfg.train.micro_batch, 1, modes[variant[1]])

        firsts = {v: run(v) for v in variants}  # the compiled ones compile here
        times = {v: [] for v in variants}
        for _ in range(repeats):
            for v in variants:
                times[v].append(run(v)[0])
    reference = firsts[variants[0]][1]
    return [{"variant": f"{t}, {m}", "first_s": firsts[t, m][0], "median_s": statistics.median(times[t, m]),
             "image_diff": float((reference.images - firsts[t, m][1].images).abs().max()),
             "logp_diff": max(float((a.logp_old - b.logp_old).abs().max()) for a, b in
                              zip(reference.transitions, firsts[t, m][1].transitions, strict=True))}
            for t, m in variants]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m engine.tools.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per algorithm")
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=5, help="timed rollouts per model-call variant")
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled variants (slow to compile)")
    parser.add_argument("--only-model-call", action="store_true", help="only the model-call table")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; built-in model, 1 prompt per iteration")
    header = f"{'algorithm':<10} {'evals/iter (rollout+train)':>27} {'s/iter':>8} {'in model':>9} " \
             f"{'batched rollout':>16} {'one-at-a-time':>14} {'speed-up':>9} {'max |diff|':>11}"
    for name in [] if args.only_model_call else args.algorithms:
        if name == args.algorithms[0]:
            print(header)
        r = bench(name, args.iterations, args.overrides)
        evals = f"{r['evals_rollout']} + {r['evals_train']}"
        print(f"{name:<10} {evals:>27} {r['s_per_iter']:>8.3f} {r['model_share']:>8.1%} {r['batched_s']:>15.3f}s "
              f"{r['single_s']:>13.3f}s {r['speedup']:>8.1f}x {r['max_diff']:>11.2e}", flush=True)
    cfg = load_config("configs/g2rpo.yaml", args.overrides)
    a = cfg.algorithm
    print(f"\nG²RPO's rollout (|K|={len(a.branch_steps)}, |Λ|={len(a.granularities)}, G={a.group_size}, one prompt), "
          f"same seed: first call, then the median of {args.repeats}; differences from eager no_grad")
    print(f"{'variant':<26} {'first call':>11} {'per rollout':>12} {'speed-up':>9} {'max |Δ image|':>14} {'max |Δ log p|':>14}")
    results = model_call(args.repeats, not args.no_compile, args.overrides)
    for r in results:
        print(f"{r['variant']:<26} {r['first_s']:>10.2f}s {r['median_s']:>11.3f}s "
              f"{results[0]['median_s'] / r['median_s']:>8.2f}x {r['image_diff']:>14.2e} {r['logp_diff']:>14.2e}", flush=True)


if __name__ == "__main__":
    main()
