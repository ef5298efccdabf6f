"""Score the base model and every checkpoint with every reward, on the held-out prompts (out of
domain: unseen pairings) and on a fixed subset of the training prompts (in domain).

Sampling is engine.evaluate's deterministic ODE sampler, whose noise is fixed by (prompt index,
seed): every method, every checkpoint and the base model see exactly the same noise. Each score set
is cached as JSON (`evals/...json`) together with what produced it, so a re-run skips it, and a
changed evaluation set is recomputed rather than mixed in.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

from engine.study.plan import Method, Plan, run_config, weights_sha256
from engine.study.runs import run_dir, write_json

_rewards: dict[str, object] = {}  # built once per process, scored on every checkpoint


SPLITS = ("held_out", "train")


def split_prompts(plan: Plan) -> dict[str, tuple[list[str], int]]:
    """Each split's prompts and images per prompt."""
    return {"held_out": (plan.eval_prompts, plan.eval_seeds), "train": (plan.train_prompts, 1)}


def settings(plan: Plan, cfg) -> dict:
    """What decides the scores besides the weights: prompts, seeds, rewards, model and sampler."""
    sets = {name: {"prompts": len(prompts), "sha1": hashlib.sha1(json.dumps(prompts).encode()).hexdigest(),
                   "seeds": seeds} for name, (prompts, seeds) in split_prompts(plan).items()}
    return {"splits": sets, "rewards": plan.eval_rewards, "model": dataclasses.asdict(cfg.model),
            "weights_sha256": weights_sha256(cfg),
            "steps": cfg.sampling.steps, "shift": cfg.sampling.shift}


def score(plan: Plan, cfg, adapter: Path | None, cache: Path) -> dict[str, dict[str, float]]:
    """{split: {reward: mean over every (prompt, seed) image}}; from the cache when it matches."""
    from engine.evaluate import load_with_lora, sample_images
    from engine.rewards import build_reward

    wanted = settings(plan, cfg)
    if cache.exists():
        saved = json.loads(cache.read_text())
        if saved["settings"] == wanted:
            return saved["scores"]
    start = time.perf_counter()
    model = load_with_lora(cfg.model, str(adapter) if adapter else None).eval()
    for name in plan.eval_rewards:
        if name not in _rewards:
            _rewards[name] = build_reward(name)
    scores = {}
    for split, (prompts, seeds) in split_prompts(plan).items():
        images, labels = sample_images(model, prompts, seeds, cfg.sampling.steps, cfg.sampling.shift, progress=False)
        scores[split] = {name: _rewards[name](images, labels).mean().item() for name in plan.eval_rewards}
    write_json(cache, {"settings": wanted, "scores": scores, "seconds": time.perf_counter() - start})
    return scores


def base_cache(root: Path) -> Path:
    return Path(root) / "evals" / "base.json"


def checkpoint_cache(root: Path, reward: str, method: Method, seed: int, iteration: int) -> Path:
    return Path(root) / "evals" / reward / method.key / f"seed{seed}" / f"iter_{iteration:06d}.json"


def base_config(plan: Plan):
    """Every run starts from the same model config, so one base score serves them all."""
    return run_config(plan, plan.tracks[0].reward, plan.methods[0], plan.seeds[0])


def score_base(plan: Plan, root: Path) -> dict[str, dict[str, float]]:
    return score(plan, base_config(plan), None, base_cache(root))


def score_checkpoint(plan: Plan, root: Path, reward: str, method: Method, seed: int, entry: dict) -> dict:
    """One checkpoint of a finished run (an entry of its run.json)."""
    cfg = run_config(plan, reward, method, seed)
    folder = run_dir(root, reward, method, seed) / entry["checkpoint"]
    return score(plan, cfg, folder, checkpoint_cache(root, reward, method, seed, entry["iteration"]))


def cached_scores(plan: Plan, root: Path, reward: str, method: Method, seed: int, entry: dict) -> dict | None:
    """A checkpoint's scores if evaluated with the plan's settings, without computing anything."""
    cache = checkpoint_cache(root, reward, method, seed, entry["iteration"])
    if not cache.exists():
        return None
    saved = json.loads(cache.read_text())
    return saved["scores"] if saved["settings"] == settings(plan, run_config(plan, reward, method, seed)) else None
