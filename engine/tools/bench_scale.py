"""How a G²RPO iteration's cost grows with its settings: `python -m engine.tools.bench_scale [--iterations 2]`.

From configs/g2rpo.yaml with one prompt per iteration, one setting at a time: the group size G,
the branch steps |K|, the granularities |Λ| and the prompts per iteration. For each, on the
built-in model: the model evaluations of an iteration (rollout + training, counted by the runner)
and its seconds (the mean of --iterations after one warm-up, this process on one torch thread).
Then FLUX.1's resolution, estimated only (engine/config/estimate.py: no GPU measured it). Prints a
Markdown table.
"""
from __future__ import annotations

import argparse
import os
import tempfile

import torch

BASE = ["train.prompts_per_iteration=1", "train.eval_every=0", "train.sample_every=100000",
        "train.checkpoint_every=100000", "train.movement_probe=0"]
SETTINGS = [  # (what grows, its value, overrides); the first row is the base config
    ("(base)", "", []),
    ("group size G", 4, ["algorithm.group_size=4"]), ("group size G", 16, ["algorithm.group_size=16"]),
    ("branch steps \\|K\\|", 2, ["algorithm.branch_steps=[0,1]"]),
    ("branch steps \\|K\\|", 4, ["algorithm.branch_steps=[0,1,2,3]"]),
    ("branch steps \\|K\\|", 12, [f"algorithm.branch_steps={list(range(12))}"]),
    ("granularities \\|Λ\\|", 1, ["algorithm.granularities=[1]"]),
    ("granularities \\|Λ\\|", 2, ["algorithm.granularities=[1,2]"]),
    ("prompts per iteration", 2, ["train.prompts_per_iteration=2"]),
    ("prompts per iteration", 4, ["train.prompts_per_iteration=4"]),
    ("(base, again: how much the machine drifted)", "", []),
]


def measure(overrides: list[str], iterations: int) -> tuple[int, int, float]:
    """(rollout evaluations, training evaluations, mean seconds) of an iteration."""
    from engine.config import load_config
    from engine.training.trainer import Trainer

    cfg = load_config("configs/g2rpo.yaml", BASE + [f"train.iterations={iterations + 1}"] + overrides)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(cfg, out, sink=None)
        trainer.sink = None
        trainer.iteration(0)  # warm-up
        records = [trainer.iteration(i) for i in range(1, iterations + 1)]
    evaluations = records[-1]["model_evaluations"]
    return evaluations["rollout"], evaluations["train"], sum(r["time"]["total"] for r in records) / iterations


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.tools.bench_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=2, help="timed iterations per setting")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as the jobs' workers train on a small shared CPU
    print(f"G²RPO on the built-in model, base: configs/g2rpo.yaml (G=8, |K|=8, |Λ|=3, 16 denoising steps) with one "
          f"prompt an iteration; torch {torch.__version__}, 1 thread, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs\n")
    print("| grows | value | model evaluations / iteration (rollout + train) | seconds / iteration |")
    print("| --- | ---: | ---: | ---: |")
    for grows, value, overrides in SETTINGS:
        rollout, train, seconds = measure(overrides, args.iterations)
        print(f"| {grows} | {value} | {rollout + train:,} ({rollout:,} + {train:,}) | {seconds:.2f} |", flush=True)
    from engine.config import Config, ModelConfig, TrainConfig
    from engine.config.estimate import estimate

    for resolution in (512, 720, 1024):
        cfg = Config(model=ModelConfig(name="flux", resolution=resolution), train=TrainConfig(iterations=1))
        guess, a = estimate(cfg), cfg.algorithm  # the config's defaults, FLUX.1-dev's weights
        rollout, train = guess.evaluations
        print(f"| FLUX.1 resolution (estimated) | {resolution} | {rollout + train:,} ({rollout:,} + {train:,}) "
              f"| ~{guess.seconds:.0f} |", flush=True)
    print(f"\nFLUX.1 rows: the config's defaults otherwise (G={a.group_size}, |K|={len(a.branch_steps)}, "
          f"|Λ|={len(a.granularities)}, {cfg.sampling.steps} steps, one prompt), {guess.basis}; "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
