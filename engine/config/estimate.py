"""How much memory and time a run will take, estimated from its config before it is queued.

    estimate(cfg).describe()   # "about 0.6 GB peak memory, 16 min (1,828 model evaluations per iteration ...)"
    budget_problems(cfg)       # [] or why this machine cannot take the run

Model evaluations per iteration are counted exactly as the rollouts make them (tests/test_rollout.py
checks the same count against the runner's counter). Seconds and bytes per evaluation:

- built-in and tiny-flux: fitted to runs measured on this project's 2-core CPU (`python -m
  engine.tools.measure`: peak RSS and seconds of one iteration at several group sizes, steps,
  resolutions and micro-batches, torch and the model included); the fit errs high (measured peaks
  were 68 to 91% of the estimate). Seconds are those of the machine alone; one shared with other
  jobs is slower (twice as slow at a load of 4 on its 2 cores), a faster one quicker.
- FLUX and SD3.5: not measured (no GPU was available): weights and optimiser bytes are counted,
  activations follow the transformer's width and depth, and time assumes G2RPO_GPU_TFLOPS
  (default 400) of sustained bf16 throughput, about 40% of an H100's peak. A rough guide only.

The machine's memory is G2RPO_WORKER_MEMORY_GB if set (a worker elsewhere, or a GPU's memory),
else this machine's RAM (or its container's limit). G2RPO_MAX_RUN_HOURS (default 72) bounds time.
No torch here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.config import BRANCHING
from engine.method.schedule import completion_schedule

GB = 1e9
# Small models on a 2-core CPU: bytes and seconds, at 64 image tokens (both models' default size).
SMALL = {
    "builtin": dict(base=500e6, rollout_s=1.6e-3, train_s=3.0e-3),
    "tiny-flux": dict(base=490e6, rollout_s=0.26e-3, train_s=1.45e-3),
}
# DiffusionNFT's training evaluations are one batched flow-matching forward and backward over clean
# samples re-noised, no per-step likelihoods: cheaper each than the SDE methods' (measured 2026-12-07
# on the built-in model: 1.2 ms on the idle machine, its preset's full run in 248 s; 1.7 ms in the
# study's calibration at a load of 1-2; the SDE methods' fit above is 3.0 ms).
NFT_TRAIN_FACTOR = 1.4e-3 / 3.0e-3
PER_ROW = 0.45e6  # a G²RPO branch row or a baseline member: latents, images, reward inputs, records
PER_TOKEN_ROLLOUT = 2.5e3  # activations of one sample-token in a no-grad model call
PER_TOKEN_TRAIN = 100e3  # ... and in a training call (kept for the backward)
# FLUX.1 and SD3.5 (Medium, Large): transformer and text-encoder parameters, width, depth, text tokens.
PIPELINES = {
    "flux": dict(params=11.9e9, encoders=4.9e9, width=3072, depth=57, text=512, default=720),
    "sd3": dict(params=2.5e9, encoders=5.6e9, width=1536, depth=24, text=333, default=512),
    "sd3-large": dict(params=8.1e9, encoders=5.6e9, width=2432, depth=38, text=333, default=512),
}
REWARD_BYTES = {"hps": 4e9, "clip_score": 4e9, "pickscore": 4e9, "image_reward": 2e9}  # ViT-H / BLIP in fp32


@dataclass
class Estimate:
    peak_bytes: float
    seconds: float
    evaluations: tuple[int, int]  # per iteration: rollout, training
    basis: str

    def describe(self) -> str:
        rollout, train = self.evaluations
        return (f"about {self.peak_bytes / GB:,.1f} GB peak memory and {duration(self.seconds)} "
                f"({rollout + train:,} model evaluations per iteration; {self.basis})")


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"


def evaluations(cfg) -> tuple[int, int]:
    """Model evaluations of one iteration (rollout, training), per process, as the engine counts them."""
    a, T, G, P = cfg.algorithm, cfg.sampling.steps, cfg.algorithm.group_size, cfg.train.prompts_per_iteration
    if a.name in BRANCHING:
        rollout = max(a.branch_steps) + 1
        for k, m in a.spans().items():
            j = k + m - 1  # the branch lands on j + 1
            shared = int(j + 1 < T) + int(j + 2 < T)
            own = sum(max(len(completion_schedule(j, lam, T, a.completion)) - 3, 0) for lam in a.granularities)
            rollout += G * (shared + own)
        rollout, train = P * rollout, P * len(a.branch_steps)
    elif a.name == "diffusionnft":  # an ODE per member; then per trained time the old and the trained velocity
        rollout, train = P * G * T, P * G * a.nft_times * (2 + int(a.kl_beta > 0))
    else:
        sde = range(T - 1) if a.name != "mixgrpo" else range(a.window_size)
        first = sde[0]  # with shared noise the members are one row until the first SDE step
        prefix = first + 1 if a.shared_noise else 0
        rollout = P * (prefix + G * (T - prefix))
        trained = len(sde) if a.name != "dancegrpo" else max(1, round(a.train_fraction * len(sde)))
        train = P * G * trained
    return rollout + _sampling_evaluations(cfg), train


def _sampling_evaluations(cfg) -> int:
    """Samples and held-out evaluations, averaged per iteration."""
    t, T = cfg.train, cfg.sampling.steps
    per = len(cfg.sample_prompts) * T / t.sample_every
    if t.eval_every:
        # The world's held-out set unless the config lists its prompts inline: estimates run on configs
        # not yet validated (the UI's cost line), so they never open a prompts file a stranger named.
        from engine.world import eval_prompts

        per += len(cfg.eval_prompts or eval_prompts()) * T / t.eval_every
    return round(per)


def _tokens(cfg) -> int:
    m = cfg.model
    if m.name in SMALL:
        return 64 if m.name == "builtin" else ((m.resolution or 16) // 2) ** 2
    spec = _pipeline(cfg)
    return ((m.resolution or spec["default"]) // 16) ** 2 + spec["text"]


def _pipeline(cfg) -> dict:
    name = cfg.model.name
    if name == "sd3" and "large" in (cfg.model.path or "").lower():
        name = "sd3-large"
    return PIPELINES[name]


def _rows(cfg) -> tuple[int, int, int]:
    """(samples alive at once in the rollout, distinct states of one trained step, images scored)."""
    a, P = cfg.algorithm, cfg.train.prompts_per_iteration
    if a.name in BRANCHING:
        rows = len(a.granularities) * len(a.branch_steps) * P * a.group_size
        return rows, P, rows
    return P * a.group_size, P * a.group_size, P * a.group_size


def estimate(cfg) -> Estimate:
    rollout, train = evaluations(cfg)
    alive, states, images = _rows(cfg)
    tokens, mb = _tokens(cfg), cfg.train.micro_batch
    iterations = cfg.train.iterations
    if cfg.model.name in SMALL:
        rate = SMALL[cfg.model.name]
        scale = (tokens / 64) ** 1.36  # the measured growth of a call's cost with the image's tokens
        peak = (rate["base"] + alive * PER_ROW * max(1.0, tokens / 64) ** 0.25
                + min(mb, alive) * tokens * PER_TOKEN_ROLLOUT + min(mb, states) * tokens * PER_TOKEN_TRAIN)
        train_s = rate["train_s"] * (NFT_TRAIN_FACTOR if cfg.algorithm.name == "diffusionnft" else 1.0)
        seconds = iterations * scale * (rollout * rate["rollout_s"] + train * train_s)
        return Estimate(peak, seconds, (rollout, train), "rates measured on a 2-core CPU")
    return _pipeline_estimate(cfg, rollout, train, alive, states, images, tokens)


def _pipeline_estimate(cfg, rollout, train, alive, states, images, tokens) -> Estimate:
    spec, m, mb = _pipeline(cfg), cfg.model, cfg.train.micro_batch
    width = 4 if m.dtype == "float32" else 2
    weights = (spec["params"] + spec["encoders"]) * width
    if cfg.lora.enabled:
        trained = cfg.lora.rank * 2 * spec["width"] * spec["depth"] * 6 * 16  # LoRA weights, grads, AdamW (fp32)
    else:
        trained = spec["params"] * 16  # fp32 master weights, gradients and AdamW moments
    per_layer = spec["width"] * 2 * 34  # a block's saved activations per token (bf16)
    kept = per_layer * (1 if m.gradient_checkpointing else spec["depth"])
    activations = (min(mb, alive) * tokens * spec["width"] * 2 * 24 + min(mb, states) * tokens * kept)
    resolution = m.resolution or spec["default"]
    pixels = 3 * resolution ** 2 * 4 * 3 * images  # decoded images in fp32, a few copies
    rewards = sum(REWARD_BYTES.get(r.name, 0) for r in cfg.rewards)
    peak = weights + trained + activations + pixels + rewards
    flops = 2 * spec["params"] * tokens
    per_eval = flops / (float(os.environ.get("G2RPO_GPU_TFLOPS", 400)) * 1e12)
    backward = 4 if m.gradient_checkpointing else 3
    seconds = cfg.train.iterations * per_eval * (rollout + backward * train)
    return Estimate(peak, seconds, (rollout, train), "rough: not measured, an assumed GPU throughput")


def machine_memory() -> float:
    """Bytes a run may use: G2RPO_WORKER_MEMORY_GB, else this machine's RAM or container limit."""
    declared = os.environ.get("G2RPO_WORKER_MEMORY_GB")
    if declared:
        return float(declared) * GB
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        return min(total, int(limit)) if limit.isdigit() else total
    except OSError:
        return total


def budget_problems(cfg) -> list[str]:
    """Why this machine should not take the run (its estimate, against memory and time), or []."""
    est = estimate(cfg)
    problems = []
    memory = machine_memory()
    if est.peak_bytes > memory:
        problems.append(f"estimated {est.describe()}: more memory than the {memory / GB:,.1f} GB of this "
                        "machine (G2RPO_WORKER_MEMORY_GB declares a worker's); lower algorithm.group_size, "
                        "train.prompts_per_iteration, the branch steps or the resolution")
    hours = float(os.environ.get("G2RPO_MAX_RUN_HOURS", 72))
    if est.seconds > hours * 3600:
        problems.append(f"estimated {est.describe()}: longer than {hours:g} h (G2RPO_MAX_RUN_HOURS); "
                        "fewer train.iterations or a smaller group")
    return problems
