"""What a run will cost, shown in the Launch form before it is queued: model evaluations per
iteration, the time as a range (jobs/forecast.py: measured on this machine when it has trained the
model and algorithm before, held-out evaluations and samples counted, the present load on the upper
end), peak memory, and a warning when it is long or needs a GPU no worker has.

No torch here (engine.config.estimate and jobs.forecast import none).
"""
from __future__ import annotations

import os

from app import forms
from engine.config import ConfigError, parse_config
from engine.config.estimate import SMALL, duration, machine_memory

GB = 1e9
LONG_S = 3600  # warn above an hour: the default preset ran two hours on 2 cores, and no form said so
MEMORY_SHARE = 0.5  # ... and above half of the machine's memory
ALLOW_CPU_ENV = "G2RPO_ALLOW_CPU"  # the operator lets FLUX/SD3.5 runs go to workers without a GPU


def span(forecast: dict) -> str:
    """'7–10 min' (one unit for both ends where it reads well)."""
    low, high = duration(forecast["low_s"]), duration(forecast["high_s"])
    if low.split()[-1] == high.split()[-1]:
        return f"{low.rsplit(' ', 1)[0]}–{high}"
    return f"{low} – {high}"


def gpu_problem(cfg) -> str | None:
    """Why a FLUX or SD3.5 run should not be launched here: the live workers have no GPU (unless the
    operator allows it). None when the model is small, a worker has a GPU, or no worker is alive to tell."""
    if cfg.model.name in SMALL or os.environ.get(ALLOW_CPU_ENV) == "1":
        return None
    from jobs import api

    workers = api.live_workers()
    if not workers or any(w["gpu_memory"] for w in workers):
        return None
    return (f"{cfg.model.name} needs a GPU and no live worker has one (they train on the CPU): a run would take "
            f"days. Start a worker on a GPU machine (python -m jobs.worker), or set {ALLOW_CPU_ENV}=1 to allow it.")


def preview(preset: str, values: dict) -> str:
    """Markdown for the form's cost line (a note instead while the form has a problem)."""
    from jobs.forecast import forecast

    if not forms.known(preset):
        return ""
    config, errors = forms.form_to_config(preset, values)
    if errors:
        return "**Cost**: shown once the form's values are valid."
    try:
        cfg = parse_config(config)
    except ConfigError:
        return "**Cost**: shown once the form's values are valid."
    f = forecast(cfg)
    no_gpu = gpu_problem(cfg)
    per_eval = f"{1000 * f['seconds_per_evaluation']:.2g} ms per model evaluation"
    load = f", ×{f['load_factor']:.1f} at the upper end for this machine's present load" if f["load_factor"] > 1 else ""
    memory, where = _memory(cfg)
    line = (f"**Cost before launch**: {f['evaluations_per_iteration']:,} model evaluations per iteration "
            f"({f['rollout']:,} rollout and samples, {f['train']:,} training) · about **{span(f)} for "
            f"{f['iterations']:,} iterations**, held-out evaluations and startup included ({per_eval}, {f['basis']}{load})"
            f" · about **{f['peak_bytes'] / GB:,.1f} GB** peak memory {where}.")
    warnings = []
    if f["high_s"] > LONG_S:
        smaller = " or fewer branch steps K and granularities Λ" if cfg.algorithm.name in ("g2rpo", "egrpo") else ""
        warnings.append(f"⚠️ About {span(f)}: try fewer iterations, a smaller group G{smaller} first.")
    if memory and f["peak_bytes"] > MEMORY_SHARE * memory:
        warnings.append(f"⚠️ More than {MEMORY_SHARE:.0%} of the memory it runs in.")
    return "\n\n".join(([f"⚠️ Not launchable here: {no_gpu}"] if no_gpu else []) + [line] + warnings)


def _memory(cfg) -> tuple[float | None, str]:
    """The memory a run's peak is compared with, and how to say it: this machine's for the small
    models; for FLUX and SD3.5 the smallest live GPU's (never the machine's RAM)."""
    if cfg.model.name in SMALL:
        memory = machine_memory()
        return memory, f"of this machine's {memory / GB:,.0f} GB"
    from jobs import api

    gpus = [w["gpu_memory"] for w in api.live_workers() if w["gpu_memory"]]
    if gpus:
        return min(gpus), f"of the worker's {min(gpus) / GB:,.0f} GB GPU"
    return None, "of GPU memory (no live worker reports a GPU)"
