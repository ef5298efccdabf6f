"""Pretrain the built-in model on the shapes world with the flow-matching loss:

    python -m engine.models.pretrain [--steps 4000] [--out engine/models/weights/builtin]

Every setting is a flag with its default recorded in the output's `pretrain.json`, with the measured
prompt adherence of the result, so the committed weights can be reproduced and checked. The loss is
|| v_theta(x_s, s, c) - (eps - x0) ||^2 with s drawn like the sampler's shifted grid; the saved weights
are an exponential moving average of the trained ones, stored in float16.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from engine.models.builtin import WEIGHTS, builtin_spec
from engine.models.tiny_flux import TinyFlux
from engine.world import render_batch, sample_scenes


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m engine.models.pretrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--shift", type=float, default=3.0, help="time shift of the training s, as the sampler's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(WEIGHTS))
    return p.parse_args(argv)


def learning_rate(step: int, args) -> float:
    """Linear warm-up, then cosine decay to 10%."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def flow_matching_loss(model: TinyFlux, images: torch.Tensor, prompts: list[str], shift: float,
                       generator: torch.Generator) -> torch.Tensor:
    x0 = model.pack(images)
    noise = torch.randn(x0.shape, generator=generator)
    u = torch.rand(len(x0), generator=generator)
    s = shift * u / (1 + (shift - 1) * u)
    xs = (1 - s[:, None, None]) * x0 + s[:, None, None] * noise
    words, pooled = model.text_encoder(prompts)
    v = model.velocity(xs, s, {"words": words, "pooled": pooled})
    return ((v - (noise - x0)) ** 2).mean()


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = TinyFlux(builtin_spec())
    model.text_encoder.requires_grad_(True)  # the word embeddings are learned with the model
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(args.seed)
    start, losses = time.time(), []
    bar = tqdm(range(args.steps), desc="pretrain")
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        images, prompts = render_batch(sample_scenes(args.batch_size, seed=args.seed * 1_000_003 + step))
        loss = flow_matching_loss(model, images, prompts, args.shift, generator)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), model.parameters()):
                p_ema.lerp_(p, 1 - args.ema)
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # float16 halves the file (3.6 MB); the model is loaded back in float32
    save_file({k: v.half().contiguous() for k, v in ema.state_dict().items()}, out / "model.safetensors")
    (out / "spec.json").write_text(json.dumps(dataclasses.asdict(ema.spec), indent=1))
    report = {"settings": vars(args), "minutes": (time.time() - start) / 60, "final_loss": sum(losses[-200:]) / len(losses[-200:])}
    (out / "pretrain.json").write_text(json.dumps(report, indent=1))
    print(f"saved {out} after {report['minutes']:.1f} min, loss {report['final_loss']:.4f}")


if __name__ == "__main__":
    main()
