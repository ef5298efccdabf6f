"""Measure one training iteration against its estimate (engine/config/estimate.py): peak memory and seconds.

    python -m engine.tools.measure --set algorithm.group_size=48            # configs/g2rpo.yaml + overrides
    python -m engine.tools.measure --config configs/flowgrpo.yaml --set train.micro_batch=16

Prints one JSON line: the overrides, the measured peak RSS of this process (torch, the model and one
iteration; samples, held-out evaluation, checkpoints and the movement probe off) and seconds of the
iteration, next to what the estimate says. Run each configuration in a fresh process (the peak is
the process's). The estimate's constants for the small models were fitted to such runs.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.tools.measure", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/g2rpo.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    import torch

    from engine.config import load_config
    from engine.config.estimate import estimate
    from engine.training.trainer import Trainer

    torch.set_num_threads(1)  # as the jobs' workers train on a small shared CPU
    quiet = ["train.iterations=1", "train.eval_every=0", "train.sample_every=1000", "train.checkpoint_every=1000",
             "train.movement_probe=0"]
    cfg = load_config(args.config, quiet + args.overrides)
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(cfg, folder)
        start = time.perf_counter()
        trainer.iteration(0)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    guess = estimate(cfg)
    print(json.dumps({"set": args.overrides, "peak_gb": round(peak / 1e9, 3), "estimated_gb": round(guess.peak_bytes / 1e9, 3),
                      "seconds": round(seconds, 2), "estimated_seconds": round(guess.seconds, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
