"""Where the reward comes from: the share of each reward's within-group variance injected at each step.

    python -m engine.attribution --config configs/g2rpo.yaml --prompts 32 --json out.json --png out.png
    python -m engine.attribution --lora docs/readme-run/lora --prompts 32 --json lora.json
    python -m engine.attribution --lora runs/g2rpo --set algorithm.granularities=[1]   # a run: its newest checkpoint

No training: the model (the config's, with `--lora` a LoRA folder, a run checkpoint or a run folder)
is sampled as G²RPO samples it (Singular Stochastic Sampling, engine/algorithms/g2rpo.py, with the
config's K, Λ, G and η): per prompt one anchor ODE trajectory from one initial noise, at each branch
step k the G members take one SDE step from the anchor's x_k, then finish by ODE. Everything but the
noise injected at k is shared, so the spread of the members' rewards at k is what that noise decides.

Definitions, per reward r (each training reward and, on the built-in world, each verifier component:
background, colour, shape, count), at the finest granularity λ (the plain ODE completion):

    v_{p,k}   the variance over the G members (unbiased, n - 1) of r for prompt p's group at k
    V_k       = mean over prompts of v_{p,k}
    share_k   = V_k / Σ_k' V_k'     the share of the variance the branch steps inject that step k
                                    injects: a column over K sums to 1
    V_ind     = mean over prompts of the variance over G members drawn from G independent initial
                noises by plain ODE: the diversity the model has for the prompt at all
    relative_k = V_k / V_ind        how much of that diversity one SDE step at k reaches. Near 0 at
                                    every k: the property is fixed before the first branch, by the
                                    anchor's shared initial noise, and no branch step can move it.

Shares are ratios of means over prompts (a prompt whose members never differ adds nothing to
either side); a reward that never varies at any k has no share (null). Intervals are percentile
bootstrap intervals over prompts (the same resampled prompt sets for every number, 2,000 draws).
With --all-granularities every branch is also completed at each λ in Λ and the shares are reported
per λ in `by_granularity` (by default only the finest λ is sampled: the others cost 2.5x the time).
The report records its wall and CPU seconds and the load average at the end (the machine may be shared).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

COMPONENTS = ("background", "colour", "shape", "count")  # the built-in world's verifiers (engine/rewards/verifiers.py)
DRAWS = 2_000  # bootstrap resamples of the prompts
LEVEL = 0.95
INDEPENDENT_STREAM = 11  # the reference's initial noises: a stream of their own (engine/rollout.seeded_generator)


# --------------------------------------------------------------------------- the math

def group_variance(scores: np.ndarray) -> np.ndarray:
    """Unbiased variance over the last axis (the G members): [..., G] -> [...]."""
    return np.asarray(scores, dtype=np.float64).var(-1, ddof=1)


def resampling_weights(prompts: int, draws: int = DRAWS, seed: int = 0) -> np.ndarray:
    """[draws, prompts]: how often each prompt appears in each bootstrap resample, divided by the
    number of prompts, so `weights @ x` is each resample's mean of x over prompts."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(prompts, size=(draws, prompts))
    return np.stack([np.bincount(row, minlength=prompts) for row in picks]) / prompts


def _ratio(top: np.ndarray, bottom) -> np.ndarray:
    """top / bottom, NaN where bottom is 0 (broadcasting)."""
    top, bottom = np.asarray(top, dtype=np.float64), np.broadcast_to(np.asarray(bottom, dtype=np.float64), np.shape(top))
    return np.divide(top, bottom, out=np.full(top.shape, np.nan), where=bottom > 0)


def shares(variance: np.ndarray) -> np.ndarray:
    """[..., P, K] per-prompt variances -> [..., K]: V_k / Σ_k V_k (NaN where nothing varies)."""
    mean = variance.mean(-2)
    return _ratio(mean, mean.sum(-1, keepdims=True))


def _interval(estimate: np.ndarray, resampled: np.ndarray, level: float) -> dict:
    """The estimate with the percentile interval of its bootstrap resamples [draws, ...]."""
    tail = (1 - level) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a reward that never varies: all-NaN columns
        low, high = np.nanpercentile(resampled, [tail, 100 - tail], axis=0)
    return {"value": estimate, "low": low, "high": high}


def share_interval(variance: np.ndarray, weights: np.ndarray, level: float = LEVEL) -> dict:
    """variance [P, K], weights [draws, P] -> {value, low, high}, each [K]."""
    means = weights @ variance  # [draws, K]: each resample's V_k
    return _interval(shares(variance), _ratio(means, means.sum(1, keepdims=True)), level)


def relative_interval(variance: np.ndarray, independent: np.ndarray, weights: np.ndarray, level: float = LEVEL) -> dict:
    """V_k / V_ind with its interval: variance [P, K], independent [P] -> {value, low, high} [K]."""
    return _interval(_ratio(variance.mean(0), independent.mean()),
                     _ratio(weights @ variance, (weights @ independent)[:, None]), level)


# --------------------------------------------------------------------------- sampling

def world_prompts(prompts: list[str]) -> bool:
    from engine.rewards.base import can_score

    return can_score("background", prompts)


def component_scores(images, prompts: list[str]) -> dict:
    """The built-in world's verifier components of images of its prompts: {name: float32 [B]}."""
    from engine.rewards.verifiers import verify

    scores = verify(images.float().cpu(), prompts)
    return {name: scores[name] for name in COMPONENTS}


def member_components(rollout, image_prompts: list[str], gather) -> dict:
    """What a G²RPO training record keeps beside its rewards, for the Monitor's per-verifier view:
    every member's verifier components at the finest λ, {"component_names", "components":
    [component][prompt][k][member]} over the global batch (`gather`: the trainer's). Empty where the
    prompts are not the built-in world's. Costs one `verify` of a third of the images (Λ = {1,2,3})."""
    import torch

    if not world_prompts(image_prompts):
        return {}
    L, K, P, G = rollout.groups
    lambdas = rollout.info["granularities"]
    rows = slice(lambdas.index(min(lambdas)) * K * P * G, (lambdas.index(min(lambdas)) + 1) * K * P * G)
    scores = component_scores(rollout.images[rows], image_prompts[rows])
    values = torch.stack([scores[name] for name in COMPONENTS]).reshape(len(COMPONENTS), K, P, G)
    values = gather(values.permute(2, 0, 1, 3).contiguous())  # prompts first: [P_global, C, K, G]
    return {"component_names": list(COMPONENTS), "components": values.transpose(0, 1).tolist()}


def make_scorer(cfg, prompts: list[str]):
    """A function (images, prompts) -> {reward name: scores [B]}: the config's training rewards, their
    weighted sum when there are several, then the verifier components where the prompts are the world's."""
    import torch

    from engine.rewards import build_reward
    from engine.rewards.verifiers import verify

    world = world_prompts(prompts)
    verifiers = set(COMPONENTS) | {"adherence"}
    models = [build_reward(r.name, r.model) for r in cfg.rewards if r.name not in verifiers]

    def score(images, labels):
        images = images.float().cpu()
        checks = verify(images, labels) if world else {}
        out = {}
        for r in cfg.rewards:
            out[r.name] = checks[r.name] if r.name in checks else next(m for m in models if m.name == r.name)(images, labels).float().cpu()
        if len(cfg.rewards) > 1:
            out["weighted"] = sum(r.weight * out[r.name] for r in cfg.rewards)
        for name in COMPONENTS if world else ():
            out.setdefault(name, checks[name])
        return {name: torch.as_tensor(v, dtype=torch.float32) for name, v in out.items()}

    return score


def measure(model, cfg, prompts: list[str], score, seed: int = 0, chunk: int = 4, progress: bool = True,
            algorithm=None) -> dict:
    """Sample `prompts` as G²RPO does and from independent noises; score every image.

    Returns {"branched": {reward: [Λ, P, K, G]}, "independent": {reward: [P, G]}, "granularities",
    "branch_steps"} as float64 arrays. `algorithm` (default: the config's) is the G²RPO rollout."""
    import torch
    from tqdm.auto import tqdm

    from engine.algorithms import build_algorithm
    from engine.models.base import VelocityRunner
    from engine.method.rollout import RolloutNoise, ode_images, seeded_generator

    algorithm = algorithm or build_algorithm(cfg)
    runner = VelocityRunner(model, cfg.train.micro_batch)
    device = next(iter(model.parameters()), torch.zeros(0)).device
    G, K, lambdas = cfg.algorithm.group_size, sorted(cfg.algorithm.branch_steps), list(cfg.algorithm.granularities)
    branched: dict[str, list] = {}
    independent: dict[str, list] = {}
    starts = list(range(0, len(prompts), chunk))
    bar = tqdm(total=2 * len(prompts), desc="attribution", unit="prompt", disable=not progress)
    with torch.inference_mode():
        for start in starts:  # G²RPO's branches: members differ only by the noise injected at k
            batch = prompts[start:start + chunk]
            cond = {key: v.to(device) for key, v in model.encode_prompts(batch).items()}
            rollout = algorithm.rollout(runner, cond, RolloutNoise.seeded(seed, 0, start, len(batch)), 0)
            scores = score(rollout.images, [batch[i] for i in rollout.prompt_idx.tolist()])
            for name, values in scores.items():  # rows (λ, k, p, member) -> [Λ, P, K, G]
                branched.setdefault(name, []).append(values.double().reshape(*rollout.groups).permute(0, 2, 1, 3).numpy())
            bar.update(len(batch))
        for start in starts:  # the reference: G independent initial noises per prompt, plain ODE
            batch = prompts[start:start + chunk]
            rows = [p for p in batch for _ in range(G)]
            noise = torch.stack([torch.randn(model.latent_shape, generator=seeded_generator(seed, INDEPENDENT_STREAM, start + i, m))
                                 for i in range(len(batch)) for m in range(G)])
            scores = score(ode_images(runner, rows, noise, algorithm.grid), rows)
            for name, values in scores.items():
                independent.setdefault(name, []).append(values.double().reshape(len(batch), G).numpy())
            bar.update(len(batch))
    bar.close()
    return {"branched": {n: np.concatenate(v, 1) for n, v in branched.items()},
            "independent": {n: np.concatenate(v, 0) for n, v in independent.items()},
            "granularities": lambdas, "branch_steps": K}


def summarize(measured: dict, draws: int = DRAWS, level: float = LEVEL, seed: int = 0) -> dict:
    """The report: per reward, share_k and relative_k with intervals at the finest λ (and per λ)."""
    lambdas, K = measured["granularities"], measured["branch_steps"]
    finest = lambdas.index(min(lambdas))
    prompts = next(iter(measured["independent"].values())).shape[0]
    weights = resampling_weights(prompts, draws, seed)

    def per_step(interval: dict) -> dict:
        return {str(k): {key: _number(interval[key][i]) for key in ("value", "low", "high")} for i, k in enumerate(K)}

    out = {"branch_steps": K, "granularity": lambdas[finest], "prompts": prompts, "level": level, "draws": draws,
           "shares": {}, "relative_to_independent": {}, "variance": {}, "independent_variance": {}, "mean": {},
           "by_granularity": {}}
    for name, scores in measured["branched"].items():
        variance = group_variance(scores)  # [Λ, P, K]
        ref = group_variance(measured["independent"][name])  # [P]
        out["shares"][name] = per_step(share_interval(variance[finest], weights, level))
        out["relative_to_independent"][name] = per_step(relative_interval(variance[finest], ref, weights, level))
        out["variance"][name] = {str(k): _number(v) for k, v in zip(K, variance[finest].mean(0))}
        boot = weights @ ref
        out["independent_variance"][name] = {"value": _number(ref.mean()), "low": _number(np.percentile(boot, (1 - level) / 2 * 100)),
                                             "high": _number(np.percentile(boot, 100 - (1 - level) / 2 * 100))}
        out["mean"][name] = {"branched": _number(scores[finest].mean()), "independent": _number(measured["independent"][name].mean())}
        out["by_granularity"][name] = {str(lam): per_step(share_interval(variance[j], weights, level)) for j, lam in enumerate(lambdas)}
    return out


def _number(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


# --------------------------------------------------------------------------- the CLI

def resolve_lora(path: str | None) -> str | None:
    """A LoRA folder as given, or a run folder's newest checkpoint."""
    from engine.training.checkpoint import LORA_WEIGHTS, latest_checkpoint
    from engine.config import ConfigError

    if path is None:
        return None
    folder = Path(path)
    if (folder / LORA_WEIGHTS).exists():
        return str(folder)
    newest = latest_checkpoint(folder) if folder.is_dir() else None
    if newest is None or not (newest / LORA_WEIGHTS).exists():
        raise ConfigError(f"--lora: no {LORA_WEIGHTS} in {path} (nor a run folder with checkpoints)")
    return str(newest)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.attribution", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/g2rpo.yaml", help="a G²RPO or E-GRPO config: K, Λ, G, η, the model, the rewards")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--lora", help="a LoRA folder, a run checkpoint, or a run folder (its newest checkpoint)")
    parser.add_argument("--prompts", type=int, default=32, help="training prompts measured (a seeded draw from the config's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=DRAWS, help="bootstrap resamples")
    parser.add_argument("--all-granularities", action="store_true",
                        help="complete every branch at each λ in Λ (by_granularity; about 2.5x slower), not only the finest")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--png", help="write the heatmap here (matplotlib)")
    parser.add_argument("--html", help="write the interactive heatmap here (Plotly, self-contained)")
    parser.add_argument("--title", help="the figures' title (default: the model and the LoRA)")
    args = parser.parse_args(argv)

    from engine.config import BRANCHING, ConfigError, load_config

    try:
        cfg = load_config(args.config, args.overrides)
        if cfg.algorithm.name not in BRANCHING:
            raise ConfigError(f"--config: the instrument samples as G²RPO does; algorithm.name is {cfg.algorithm.name!r}, "
                              f"use a {' or '.join(BRANCHING)} config (the model may come from any run: --lora)")
        pool = cfg.training_prompts()
        if not 1 <= args.prompts <= len(pool):
            raise ConfigError(f"--prompts: 1 to {len(pool)} (the config's training prompts), got {args.prompts}")
        if args.draws < 100:
            raise ConfigError(f"--draws: at least 100, got {args.draws}")
        lora = resolve_lora(args.lora)
        if not args.all_granularities:  # the shares are read at the finest λ: the coarser completions are not needed
            cfg = load_config(args.config, [*args.overrides, f"algorithm.granularities=[{min(cfg.algorithm.granularities)}]"])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    import torch

    from engine.evaluate import load_with_lora

    chosen = [pool[i] for i in np.random.default_rng(args.seed).permutation(len(pool))[:args.prompts]]
    model = load_with_lora(cfg.model, lora).to("cuda" if torch.cuda.is_available() else "cpu").eval()
    start, cpu = time.perf_counter(), time.process_time()
    measured = measure(model, cfg, chosen, make_scorer(cfg, chosen), args.seed)
    report = summarize(measured, args.draws, seed=args.seed)
    a = cfg.algorithm
    report = {"model": cfg.model.name, "lora": lora, "config": args.config, "set": args.overrides,
              "group_size": a.group_size, "eta": a.eta, "granularities": list(a.granularities), "seed": args.seed,
              "prompt_list": chosen, "seconds": round(time.perf_counter() - start, 1),
              "cpu_seconds": round(time.process_time() - cpu, 1), "load_average": [round(v, 2) for v in os.getloadavg()], **report}
    print(text_table(report))
    title = args.title or f"{cfg.model.name}{' + ' + lora if lora else ' (base)'}"
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.png or args.html:
        from engine.attribution import figure as attribution_figure

        if args.png:
            attribution_figure.write_png(report, args.png, title)
        if args.html:
            attribution_figure.write_html(report, args.html, title)
    return 0


def text_table(report: dict) -> str:
    """Per reward, a row of shares in % with intervals, then the same relative to independent noises."""
    steps = report["branch_steps"]
    lines = [f"{report['prompts']} prompts, G = {report['group_size']}, λ = {report['granularity']}, "
             f"{report['seconds']} s; share of each reward's within-group variance injected at k (%), "
             f"{report['level']:.0%} interval"]
    header = "| reward | " + " | ".join(f"k={k}" for k in steps) + " | V_ind |"
    lines += ["", header, "|" + " --- |" * (len(steps) + 2)]

    def cell(v):
        return "—" if v["value"] is None else f"{100 * v['value']:.0f} [{100 * v['low']:.0f}–{100 * v['high']:.0f}]"

    for name, per_step in report["shares"].items():
        ind = report["independent_variance"][name]["value"]
        lines.append(f"| {name} | " + " | ".join(cell(per_step[str(k)]) for k in steps) + f" | {ind:.3g} |")
    lines += ["", "relative to independent initial noises: V_k / V_ind (%)", "", header.replace(" V_ind |", ""),
              "|" + " --- |" * (len(steps) + 1)]
    for name, per_step in report["relative_to_independent"].items():
        lines.append(f"| {name} | " + " | ".join(cell(per_step[str(k)]) for k in steps) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
