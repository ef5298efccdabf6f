"""How much of one iteration's gradient is signal: independent estimates at the same weights.

    python -m engine.tools.gradient_snr --config configs/diffusionnft.yaml --estimates 6
    python -m engine.tools.gradient_snr --config configs/diffusionnft.yaml --set algorithm.group_size=32

Each estimate is what one iteration of the trainer would step with (its prompts, rollout, rewards,
advantages and loss; every optimizer step of a "per_step" iteration summed), taken at the starting
weights, iteration k drawing its own prompts and noise. With g_k = mu + n_k, the mean of g_i . g_j
over pairs i != j estimates |mu|^2 and the mean of |g_k|^2 estimates |mu|^2 + E|n|^2: their ratio,
the signal fraction, is the share of a single iteration's squared gradient that is its expectation
(1: every iteration points the same way; 0: pure noise). Adam moves each weight by about the
learning rate per step whatever that share is, so it says how much of a run's movement is drift.
Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile


def signal_fraction(grads) -> dict:
    """grads [K, D] -> the signal fraction and the mean pairwise cosine of K gradient estimates."""
    import torch

    gram = grads @ grads.T  # [K, K]: dot products; the diagonal holds the squared norms
    pairs = ~torch.eye(len(grads), dtype=torch.bool)
    squared = gram.diagonal()
    cosines = gram / (squared[:, None] * squared[None, :]).sqrt()
    return {"signal_fraction": (gram[pairs].mean() / squared.mean()).item(), "mean_cosine": cosines[pairs].mean().item()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.tools.gradient_snr", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/diffusionnft.yaml")
    parser.add_argument("--estimates", type=int, default=6, help="independent iterations (at least 2)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.estimates < 2:
        parser.error("--estimates: need at least 2 to compare")

    import torch

    from engine.config import load_config
    from engine.training.trainer import Trainer

    quiet = ["train.eval_every=0", "train.sample_every=100000", "train.checkpoint_every=100000", "train.movement_probe=0"]
    cfg = load_config(args.config, quiet + args.overrides)
    grads, rewards = [], []
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(cfg, folder)
        total = None

        def capture(it):  # instead of stepping: add this step's gradient to the iteration's, keep the weights
            nonlocal total
            g = torch.cat([p.grad.flatten() for p in trainer.params]).double()
            total = g if total is None else total + g
            trainer.optimizer.zero_grad()
            return g.norm().item()

        trainer.optimizer_step = capture
        for k in range(args.estimates):
            total = None
            record = trainer.iteration(k)
            grads.append(total)
            rewards.append({name: r["mean"] for name, r in record["reward"].items()})
    out = {"set": args.overrides, "estimates": args.estimates, **signal_fraction(torch.stack(grads)),
           "reward": {name: sum(r[name] for r in rewards) / len(rewards) for name in rewards[0]}}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
