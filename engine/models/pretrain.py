"""Pretrain the built-in model on the shapes world with the flow-matching loss:

    python -m engine.models.pretrain [--steps 10000] [--out engine/models/weights/builtin]

The loss is || v_theta(x_s, s, c) - (eps - x0) ||^2. By default s is drawn logit-normal (SD3's
choice), which spends the training on the middle noise levels where shapes are decided; `--time
shifted` draws it like the sampler's shifted grid instead. The saved weights are an exponential
moving average of the trained ones, stored in float16.

`--caption-noise q` misstates the fields named by `--misstate` (count and shape by default), each
independently, in a share q of the training captions (to another value that keeps the caption a
training prompt), as web alt-text misstates what an image shows: the model then follows its prompt
only part of the time. The committed weights are the exact-caption model fine-tuned with
`--caption-noise 0.3 --misstate colour background` (docs/builtin-world.md). `--init FOLDER` starts from
saved weights instead of random ones (a fine-tuning stage), recording that folder's own commands.

The run is resumable: every `--snapshot-every` steps it writes `pretrain_state.pt` (model, EMA,
optimizer, step, losses) and a sample grid with the exact verifiers' scores to `--work`, and a
second invocation with the same settings carries on from there. Every setting is recorded in the
output's `pretrain.json` with the verifiers' scores of the result on training and held-out prompts,
so the committed weights can be reproduced and checked.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from engine.models.builtin import WEIGHTS, builtin_spec
from engine.models.tiny_flux import TinyFlux
from engine.world import BACKGROUNDS, COLOURS, SHAPES, caption, is_held_out, render_batch, sample_scenes
from engine.world.scenes import COUNTS

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m engine.models.pretrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--time", choices=("logit-normal", "shifted"), default="logit-normal",
                   help="how the training noise level s is drawn")
    p.add_argument("--shift", type=float, default=3.0, help="with --time shifted: the sampler's time shift")
    p.add_argument("--caption-noise", type=float, default=0.0,
                   help="share of captions in which each --misstate field is misstated")
    p.add_argument("--misstate", nargs="+", default=["count", "shape"], choices=sorted(MISSTATABLE),
                   help="with --caption-noise: the caption fields misstated, each independently")
    p.add_argument("--init", default=None, help="start from the weights in this folder (its pretrain.json is recorded)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--snapshot-every", type=int, default=1000)
    p.add_argument("--work", default="runs/pretrain", help="resumable state and progress grids")
    p.add_argument("--out", default=str(WEIGHTS))
    return p.parse_args(argv)


def learning_rate(step: int, args) -> float:
    """Linear warm-up, then cosine decay to 10%."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def draw_times(n: int, how: str, shift: float, generator: torch.Generator) -> torch.Tensor:
    if how == "logit-normal":
        return torch.sigmoid(torch.randn(n, generator=generator))
    u = torch.rand(n, generator=generator)
    return shift * u / (1 + (shift - 1) * u)


MISSTATABLE = {"count": COUNTS, "shape": SHAPES, "colour": tuple(COLOURS), "background": tuple(BACKGROUNDS)}


def misstate(scenes, q: float, rng, fields=("count", "shape")) -> list:
    """The scenes with each of `fields` replaced, independently with probability q, by another value,
    wherever the new caption is still a training prompt (the held-out pairings stay unseen)."""
    if q <= 0:
        return scenes
    out = []
    for spec, seed in scenes:
        for field in fields:
            if rng.random() < q:
                others = [o for o in (_replaced(spec, field, v) for v in MISSTATABLE[field]) if o is not None]
                others = [o for o in others if o != spec and not is_held_out(o)]
                if others:
                    spec = others[rng.integers(len(others))]
        out.append((spec, seed))
    return out


def _replaced(spec, field: str, value):
    try:  # an object the colour of its background is no scene
        return dataclasses.replace(spec, **{field: value})
    except ValueError:
        return None


def flow_matching_loss(model: TinyFlux, images: torch.Tensor, prompts: list[str], generator: torch.Generator,
                       time: str = "logit-normal", shift: float = 3.0) -> torch.Tensor:
    x0 = model.pack(images)
    noise = torch.randn(x0.shape, generator=generator)
    s = draw_times(len(x0), time, shift, generator)
    xs = (1 - s[:, None, None]) * x0 + s[:, None, None] * noise
    words, pooled = model.text_encoder(prompts)
    v = model.velocity(xs, s, {"words": words, "pooled": pooled})
    return ((v - (noise - x0)) ** 2).mean()


def verifier_scores(model: TinyFlux, seeds: int = 2) -> dict:
    """Mean exact-verifier scores of ODE samples on the training and the held-out prompts."""
    from engine.evaluate import sample_images
    from engine.rewards.verifiers import verify
    from engine.world import eval_prompts, train_prompts

    out = {}
    for split, prompts in (("train", train_prompts()), ("eval", eval_prompts())):
        images, labels = sample_images(model, prompts, seeds, progress=False)
        out[split] = {k: round(v.mean().item(), 4) for k, v in verify(images, labels).items()}
    return out


GRID_PROMPTS = ("a large red circle on a black background", "two blue squares on a white background",
                "three yellow triangles on a gray background", "a small green triangle on a black background",
                "two white circles on a gray background", "three purple squares on a white background")


def save_grid(model: TinyFlux, path: Path, seeds: int = 6) -> None:
    """Rows: GRID_PROMPTS; columns: seeds. Scaled 4x so a person can look at it."""
    from PIL import Image

    from engine.evaluate import sample_images

    images, _ = sample_images(model, list(GRID_PROMPTS), seeds, progress=False)
    n, side = len(GRID_PROMPTS), images.shape[-1]
    grid = images.reshape(n, seeds, 3, side, side).permute(0, 3, 1, 4, 2).reshape(n * side, seeds * side, 3)
    picture = Image.fromarray((grid * 255).round().byte().numpy())
    picture.resize((picture.width * 4, picture.height * 4), Image.NEAREST).save(path)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.init:
        from engine.models.builtin import load_builtin

        model = load_builtin(args.init).train()
    else:
        model = TinyFlux(builtin_spec())
    model.text_encoder.requires_grad_(True)  # the word embeddings are learned with the model
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(args.seed)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    state_file, settings = work / "pretrain_state.pt", {k: v for k, v in vars(args).items() if k not in ("work", "out")}
    first, losses, seconds, history = 0, [], 0.0, []
    if state_file.exists():
        state = torch.load(state_file, weights_only=False)
        # --steps may change on resume (a shorter or longer schedule from there on); it is recorded
        other = {k: v for k, v in state["settings"].items() if k != "steps"}
        if other != {k: v for k, v in settings.items() if k != "steps"}:
            raise SystemExit(f"{state_file} was made with other settings {state['settings']}; use another --work")
        history = state.get("history") or [{"steps": state["settings"]["steps"], "from_step": 0}]
        model.load_state_dict(state["model"]), ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"]), generator.set_state(state["generator"])
        first, losses, seconds = state["step"], state["losses"], state["seconds"]
        print(f"resuming {state_file} at step {first}")
    if not history or history[-1]["steps"] != args.steps:
        history.append({"steps": args.steps, "from_step": first})
    start = time.time() - seconds
    bar = tqdm(range(first, args.steps), initial=first, total=args.steps, desc="pretrain")
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        scenes = sample_scenes(args.batch_size, seed=args.seed * 1_000_003 + step)
        images, prompts = render_batch(scenes)
        if args.caption_noise:
            prompts = [caption(spec) for spec, _ in misstate(scenes, args.caption_noise, np.random.default_rng([args.seed, step]),
                                                             args.misstate)]
        loss = flow_matching_loss(model, images, prompts, generator, args.time, args.shift)
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
        done = step + 1
        if done % args.snapshot_every == 0 or done == args.steps:
            torch.save({"settings": settings, "model": model.state_dict(), "ema": ema.state_dict(),
                        "optimizer": optimizer.state_dict(), "generator": generator.get_state(), "step": done,
                        "losses": losses, "seconds": time.time() - start, "history": history}, state_file.with_suffix(".tmp"))
            state_file.with_suffix(".tmp").replace(state_file)  # a kill mid-write keeps the previous state
            save_grid(ema.eval(), work / f"grid_{done:06d}.png")
            ema.train()
            tqdm.write(f"step {done}: loss {sum(losses[-200:]) / 200:.4f}, {(time.time() - start) / 60:.1f} min")

    minutes = (time.time() - start) / 60
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # float16 halves the file; the model is loaded back in float32
    save_file({k: v.half().contiguous() for k, v in ema.state_dict().items()}, out / "model.safetensors")
    (out / "spec.json").write_text(json.dumps(dataclasses.asdict(ema.spec), indent=1))
    from engine.models.builtin import load_builtin

    saved = load_builtin(out)  # score what was saved (float16), not the float32 copy
    save_grid(saved, work / "grid_final.png")
    init_file = Path(args.init or "") / "pretrain.json"  # how the starting weights were made, to reproduce the chain
    init_report = {"init_commands": json.loads(init_file.read_text())["commands"]} if args.init and init_file.exists() else {}
    shown = {k: " ".join(v) if isinstance(v, list) else v for k, v in settings.items()
             if k != "steps" and v is not None and not (k == "misstate" and not args.caption_noise)}
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in shown.items())
    # One command per schedule: a run whose --steps changed on resume is reproduced by running
    # each until the next one's first step (killing it after that step's snapshot), then the last.
    report = {"commands": [f"python -m engine.models.pretrain --steps {h['steps']} {flags}"
                           + (f"  # until the snapshot at step {history[i + 1]['from_step']}" if i + 1 < len(history) else "")
                           for i, h in enumerate(history)],
              "settings": settings, "schedule_history": history, **init_report, "minutes": round(minutes, 1),
              "final_loss": round(sum(losses[-200:]) / len(losses[-200:]), 4),
              "verifiers_2_seeds": verifier_scores(saved)}
    (out / "pretrain.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
