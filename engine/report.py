"""Pictures of one run on the built-in model: base against tuned, and its curves.

    python -m engine.report --run runs/my-run [--lora runs/my-run/checkpoints/iter_000100] [--out DIR]

`grid.png`: eight held-out prompts (unseen colour-shape and colour-background pairings), each from
the same noise seeds through the base model and the tuned LoRA, with each image's exact-verifier
adherence. `curves.png`: the training reward per iteration (the mean over the iteration's prompts,
raw and smoothed), the held-out evaluations the run recorded (base first), and how far the policy
moved from the base.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from engine.training.checkpoint import latest_checkpoint  # noqa: E402
from engine.config import ModelConfig  # noqa: E402
from engine.training.records import read_records  # noqa: E402

GRID_PROMPTS = ("a red triangle on a black background", "two red triangles on a white background",
                "a blue circle on a white background", "three blue circles on a gray background",
                "two green squares on a white background", "three green triangles on a white background",
                "a purple circle on a black background", "two purple squares on a black background")
SCORES = ("adherence", "shape", "count", "colour", "background")


def ema(values: list[float], alpha: float) -> list[float]:
    out, last = [], None
    for v in values:
        last = v if last is None else alpha * last + (1 - alpha) * v
        out.append(last)
    return out


def grid(model_cfg: ModelConfig, lora: Path, path: Path, seeds: int = 2) -> dict:
    """Rows: (seed, base | tuned); columns: GRID_PROMPTS. Returns the mean adherence of each row kind."""
    from engine.evaluate import load_with_lora, sample_images
    from engine.rewards.verifiers import verify

    prompts = list(GRID_PROMPTS)
    images, scores = {}, {}
    for label, adapter in (("base", None), ("tuned", str(lora))):
        model = load_with_lora(model_cfg, adapter).eval()
        images[label], rows = sample_images(model, prompts, seeds, progress=False)  # same noise for both
        scores[label] = verify(images[label], rows)["adherence"]
    fig, axes = plt.subplots(2 * seeds, len(prompts), figsize=(1.6 * len(prompts), 1.85 * 2 * seeds))
    for p, prompt in enumerate(prompts):
        axes[0, p].set_title(prompt.replace(" on a ", "\non a "), fontsize=7)
        for s in range(seeds):
            for r, label in enumerate(("base", "tuned")):
                ax, i = axes[2 * s + r, p], p * seeds + s
                ax.imshow(images[label][i].permute(1, 2, 0).numpy(), interpolation="nearest")
                ax.set_xticks([]), ax.set_yticks([])
                ax.set_xlabel(f"adherence {scores[label][i]:.2f}", fontsize=7, labelpad=2)
                if p == 0:
                    ax.set_ylabel(f"{label}\nseed {s}", fontsize=8)
    # 16 images are an illustration, not a measurement (a DanceGRPO grid read +0.13 where 108 prompts x 4
    # seeds gave +0.03): the title says so and points at the held-out table
    n = scores["base"].numel()
    fig.suptitle(f"an illustration: {len(GRID_PROMPTS)} held-out prompts x {n // len(GRID_PROMPTS)} seeds, the same "
                 f"noise through base and tuned (these {n} images: adherence {scores['base'].mean():.2f} → "
                 f"{scores['tuned'].mean():.2f}; the held-out score is `python -m engine.evaluate --prompts eval "
                 "--seeds 4`)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {label: s.mean().item() for label, s in scores.items()}


def curves(records: list[dict], path: Path, smoothing: float = 0.8) -> None:
    its = [r["iteration"] + 1 for r in records]
    evaluations = [r["base_evaluation"] for r in records if "base_evaluation" in r]
    evaluations += [r["evaluation"] for r in records if "evaluation" in r]
    moved = [r.get("policy_movement") for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for name in records[0]["reward"]:
        raw = [r["reward"][name]["mean"] for r in records]
        line, = axes[0].plot(its, raw, alpha=0.25, linewidth=0.8)
        axes[0].plot(its, ema(raw, smoothing), color=line.get_color(), label=f"{name} (EMA {smoothing})")
    axes[0].set(title="training reward (mean over the iteration's prompts)", xlabel="iteration")
    axes[0].legend(fontsize=8)
    for name in SCORES:
        if evaluations and name in evaluations[0]["scores"]:
            axes[1].plot([e["trained"] for e in evaluations], [e["scores"][name] for e in evaluations], marker="o",
                         markersize=3, label=name)
    axes[1].set(title="held-out prompts (base at 0)", xlabel="iterations trained")
    axes[1].legend(fontsize=8)
    if any(m is not None for m in moved):
        axes[2].plot(its, moved)
    axes[2].set(title="policy movement ‖v − v_base‖ / ‖v_base‖", xlabel="iteration")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a run folder (records.jsonl, config.yaml, checkpoints/)")
    p.add_argument("--lora", help="the LoRA folder to compare (default: the run's latest checkpoint)")
    p.add_argument("--out", help="where grid.png and curves.png go (default: the run folder)")
    p.add_argument("--seeds", type=int, default=2)
    args = p.parse_args(argv)
    from engine.config import read_yaml

    run = Path(args.run)
    lora = Path(args.lora) if args.lora else latest_checkpoint(run)
    if lora is None or not (run / "records.jsonl").exists():
        print(f"{run}: no records or checkpoint to report on", file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    model_cfg = ModelConfig(**read_yaml(run / "config.yaml")["model"])
    out = Path(args.out or run)
    out.mkdir(parents=True, exist_ok=True)
    curves(read_records(run / "records.jsonl"), out / "curves.png")
    means = grid(model_cfg, lora, out / "grid.png", args.seeds)
    print(json.dumps({"grid_adherence": means, "files": [str(out / "grid.png"), str(out / "curves.png")]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
