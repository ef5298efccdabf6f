"""Score a model on held-out prompts with every reward, in the shape of the paper's Table 1:

    python -m engine.evaluate --model builtin --prompts eval
    python -m engine.evaluate --model builtin --lora runs/g2rpo/checkpoints/iter_000050 --prompts eval

Each prompt is sampled from the same seeds for every row (base and each LoRA), by the deterministic
ODE sampler; columns are reward means over all images. Rewards marked `held_out` are the
out-of-domain columns (never used for training by the default configs).
"""
from __future__ import annotations

import argparse
import json
import sys

import torch
from tqdm.auto import tqdm

from engine.training.checkpoint import LORA_WEIGHTS
from engine.config import ConfigError, ModelConfig
from engine.models import build_model, check_model_prompts, model_names
from engine.models.base import VelocityRunner
from engine.rewards import build_reward, reward_names
from engine.method.rollout import ode_images
from engine.method.sampling import sigma_grid

DEFAULT_REWARDS = ("preference", "adherence", "background", "colour", "shape", "count")


def prompt_set(name: str) -> list[str]:
    from engine.world import all_prompts, eval_prompts, train_prompts

    sets = {"eval": eval_prompts, "train": train_prompts, "all": all_prompts}
    if name not in sets:
        raise ConfigError(f"--prompts: 'eval', 'train' or 'all', got {name!r}")
    return sets[name]()


@torch.no_grad()
def sample_images(model, prompts: list[str], seeds: int, steps: int = 16, shift: float = 3.0,
                  micro_batch: int = 256, progress: bool = True) -> tuple[torch.Tensor, list[str]]:
    """ODE samples of every prompt from seeds 0..seeds-1 (noise fixed by prompt index and seed)."""
    grid = sigma_grid(steps, shift).float()
    runner = VelocityRunner(model, micro_batch)
    images, labels = [], []
    chunk = max(1, micro_batch // seeds)
    for start in tqdm(range(0, len(prompts), chunk), desc="sampling", disable=not progress):
        batch = prompts[start:start + chunk]
        rows = [p for p in batch for _ in range(seeds)]
        noise = torch.stack([torch.randn(model.latent_shape, generator=torch.Generator().manual_seed(1_000 * (start + p) + s))
                             for p in range(len(batch)) for s in range(seeds)])
        images.append(ode_images(runner, rows, noise, grid))
        labels += rows
    return torch.cat(images), labels


def evaluate(model, prompts: list[str], rewards: list, seeds: int, progress: bool = True) -> dict[str, float]:
    """Mean score of each reward (built once by the caller) over every prompt and seed."""
    images, labels = sample_images(model, prompts, seeds, progress=progress)
    return {reward.name: reward(images, labels).mean().item() for reward in rewards}


def load_with_lora(model_cfg: ModelConfig, folder: str | None):
    model = build_model(model_cfg)
    if folder:
        model.transformer.load_lora_adapter(folder, prefix="transformer", weight_name=LORA_WEIGHTS)
    return model


def format_table(rows: dict[str, dict[str, float]], rewards: list) -> str:
    header = "| model | " + " | ".join(f"{r.name}{' (held out)' if r.held_out else ''}" for r in rewards) + " |"
    lines = [header, "|" + " --- |" * (len(rewards) + 1)]
    for label, scores in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{scores[r.name]:.3f}" for r in rewards) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin", choices=model_names())
    parser.add_argument("--lora", action="append", default=[], help="LoRA folder (repeatable: one row each)")
    parser.add_argument("--prompts", default="eval", help="eval (held out), train or all")
    parser.add_argument("--seeds", type=int, default=4, help="images per prompt")
    parser.add_argument("--rewards", nargs="+", default=list(DEFAULT_REWARDS))
    parser.add_argument("--json", help="also write the scores to this file")
    args = parser.parse_args(argv)
    try:
        prompts = prompt_set(args.prompts)
        check_model_prompts(ModelConfig(args.model), prompts)
        unknown = [r for r in args.rewards if r not in reward_names()]
        if unknown:
            raise ConfigError(f"--rewards: unknown {unknown}; known: {', '.join(reward_names())}")
        if args.seeds < 1:
            raise ConfigError("--seeds must be >= 1")
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rewards = [build_reward(name) for name in args.rewards]  # loaded once, scored on every row
    rows = {}
    for folder in [None, *args.lora]:
        model = load_with_lora(ModelConfig(args.model), folder)
        rows[folder or f"{args.model} (base)"] = evaluate(model, prompts, rewards, args.seeds)
    print(f"{len(prompts)} {args.prompts} prompts x {args.seeds} seeds")
    print(format_table(rows, rewards))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"prompts": args.prompts, "seeds": args.seeds, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
