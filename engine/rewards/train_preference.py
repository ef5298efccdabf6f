"""Train the learned reward model of the shapes world:

    python -m engine.rewards.train_preference [--steps 1200]

Positives are clean renders of training prompts with their caption; negatives are renders of the
same scene with one attribute (colour, shape, count or background) changed, still paired with the
original caption. Light blur and noise make it tolerate generated images. Held-out prompts are
never seen, so its scores on them measure generalisation, as HPS on unseen prompts.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from engine.rewards.learned import WEIGHTS, PreferenceNet
from engine.world import BACKGROUNDS, COLOURS, SHAPES, VOCABULARY, SceneSpec, caption, render_tensor, sample_scenes
from engine.world.scenes import COUNTS


def perturb(spec: SceneSpec, rng: random.Random) -> SceneSpec:
    """The same scene with one attribute changed (keeping objects visible on the background)."""
    while True:
        field = rng.choice(["colour", "shape", "count", "background"])
        options = {"colour": COLOURS, "shape": SHAPES, "count": COUNTS, "background": BACKGROUNDS}[field]
        value = rng.choice([o for o in options if o != getattr(spec, field)])
        if (field == "colour" and value == spec.background) or (field == "background" and value == spec.colour):
            continue  # the objects would be invisible
        return dataclasses.replace(spec, **{field: value})


def batch(n: int, seed: int, rng: random.Random):
    """n / 2 matching and n / 2 mismatching (image, caption) pairs with labels."""
    images, prompts, labels = [], [], []
    for i, (spec, render_seed) in enumerate(sample_scenes(n, seed)):
        shown = spec if i % 2 == 0 else perturb(spec, rng)
        images.append(render_tensor(shown, render_seed))
        prompts.append(caption(spec))
        labels.append(float(i % 2 == 0))
    images = torch.stack(images)
    blur = torch.nn.functional.avg_pool2d(images, 3, stride=1, padding=1, count_include_pad=False)
    mix = torch.rand(n, 1, 1, 1)
    images = (1 - mix) * images + mix * blur + torch.randn_like(images) * torch.rand(n, 1, 1, 1) * 0.1
    return images.clamp(0, 1), prompts, torch.tensor(labels)


def accuracy(net: PreferenceNet, split: str, seed: int = 12345, n: int = 1024) -> float:
    rng = random.Random(seed)
    images, prompts, labels = [], [], []
    for i, (spec, render_seed) in enumerate(sample_scenes(n, seed, split=split)):
        images.append(render_tensor(spec if i % 2 == 0 else perturb(spec, rng), render_seed))
        prompts.append(caption(spec))
        labels.append(i % 2 == 0)
    with torch.no_grad():
        predicted = net(torch.stack(images), prompts) > 0
    return (predicted == torch.tensor(labels)).float().mean().item()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m engine.rewards.train_preference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(WEIGHTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    net = PreferenceNet(list(VOCABULARY))
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)
    start = time.time()
    for step in (bar := tqdm(range(args.steps), desc="preference")):
        images, prompts, labels = batch(args.batch_size, args.seed * 1_000_003 + step, rng)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(images, prompts), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    net.eval()
    settings = {k: v for k, v in vars(args).items() if k != "out"}  # no machine's absolute path
    report = {"command": "python -m engine.rewards.train_preference "
                         + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.items()),
              "settings": settings, "minutes": round((time.time() - start) / 60, 1),
              "accuracy_train_prompts": accuracy(net, "train"), "accuracy_eval_prompts": accuracy(net, "eval")}
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, args.out)
    with open(str(args.out).replace(".safetensors", ".json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
