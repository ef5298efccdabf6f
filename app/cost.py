"""What a run will cost, shown in the Launch form before it is queued: model evaluations per
iteration, seconds per iteration and in all, and peak memory, with a warning when it is long.

Seconds come from the rate measured on this machine by recent runs of the same model and algorithm
when there are any (seconds per model evaluation over their last iterations), else from
engine.estimate's calibrated rates. No torch here (engine.estimate imports none).
"""
from __future__ import annotations

from app import forms
from engine.config import ConfigError, parse_config
from engine.estimate import duration, estimate, evaluations, machine_memory

GB = 1e9
LONG_S = 3600  # warn above an hour: the default preset ran two hours on 2 cores, and no form said so
MEMORY_SHARE = 0.5  # ... and above half of the machine's memory


def measured(model: str, algorithm: str) -> dict | None:
    """This machine's seconds per model evaluation for the model and algorithm, from recent runs."""
    from jobs import api

    return api.queries.measured_rate(model, algorithm)


def preview(preset: str, values: dict) -> str:
    """Markdown for the form's cost line (a note instead while the form has a problem)."""
    if preset not in forms.PRESETS:
        return ""
    config, errors = forms.form_to_config(preset, values)
    if errors:
        return "**Cost**: shown once the form's values are valid."
    try:
        cfg = parse_config(config)
    except ConfigError:
        return "**Cost**: shown once the form's values are valid."
    est, (rollout, train) = estimate(cfg), evaluations(cfg)
    per_iteration = rollout + train
    iterations = cfg.train.iterations
    rate = measured(cfg.model.name, cfg.algorithm.name)
    if rate is not None:
        seconds = rate["seconds_per_evaluation"] * per_iteration * iterations
        basis = (f"measured on this machine: {1000 * rate['seconds_per_evaluation']:.2g} ms per model evaluation "
                 f"in run{'s' if len(rate['runs']) > 1 else ''} {', '.join(f'#{r}' for r in rate['runs'])}")
    else:
        seconds, basis = est.seconds, est.basis
    memory = machine_memory()
    line = (f"**Cost before launch**: {per_iteration:,} model evaluations per iteration ({rollout:,} rollout, "
            f"{train:,} training) · about **{duration(seconds / max(iterations, 1))} per iteration, "
            f"{duration(seconds)} for {iterations:,} iterations** ({basis}) · about "
            f"**{est.peak_bytes / GB:,.1f} GB** peak memory of {memory / GB:,.0f} GB.")
    warnings = []
    if seconds > LONG_S:
        smaller = " or fewer branch steps K and granularities Λ" if cfg.algorithm.name in ("g2rpo", "egrpo") else ""
        warnings.append(f"⚠️ About {duration(seconds)}: try fewer iterations, a smaller group G{smaller} first.")
    if est.peak_bytes > MEMORY_SHARE * memory:
        warnings.append(f"⚠️ More than {MEMORY_SHARE:.0%} of this machine's memory.")
    return "\n\n".join([line, *warnings])
