"""Upper bounds on every size-like setting, so that no config can ask for more than a machine holds.

Each limit has a default that fits every shipped preset and paper config, and an environment
variable that raises (or lowers) it deliberately, read at validation time:

    G2RPO_MAX_GROUP_SIZE=128 python -m engine.train ...      # the CLI
    G2RPO_MAX_ITERATIONS=5000 python app.py                  # the app (and the worker it starts)

A limit is an environment variable and not a config key on purpose: whoever submits a config
(a visitor of a public Space) must not be able to raise it. Every value is also checked against
the estimate of memory and time (engine/config/estimate.py). Documented in docs/security.md.
"""
from __future__ import annotations

import os
import reprlib
from dataclasses import dataclass

SEED_MAX = 2**32 - 1  # numpy's and torch's generators take 32-bit seeds everywhere we seed them


@dataclass(frozen=True)
class Limit:
    name: str  # G2RPO_MAX_<NAME>
    default: int
    unit: str  # what is counted: "members", "characters", ...

    @property
    def env(self) -> str:
        return f"G2RPO_MAX_{self.name.upper()}"

    def value(self) -> int:
        raw = os.environ.get(self.env, "").strip()
        if not raw:
            return self.default
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"{self.env}={raw[:20]!r}: a limit must be a whole number >= 1")
        return value


LIMITS = {limit.name: limit for limit in (
    Limit("group_size", 64, "members per group"),
    Limit("steps", 100, "denoising steps"),
    Limit("iterations", 100_000, "iterations"),
    Limit("resolution", 1024, "pixels per side"),
    Limit("micro_batch", 256, "samples per model call"),
    Limit("prompts_per_iteration", 64, "prompts per iteration"),
    Limit("prompt_chars", 2_000, "characters per prompt"),
    Limit("prompts", 200_000, "prompts"),  # HPDv2's training prompts are about 104,000
    Limit("sample_prompts", 32, "sample prompts"),
    Limit("lora_rank", 512, "LoRA rank"),
    Limit("movement_probe", 64, "probe rows"),
    Limit("rewards", 16, "reward models"),
    Limit("prompts_file_mb", 64, "MB per prompts file"),
    Limit("queued_runs", 50, "runs waiting in the queue"),  # jobs: a submission beyond it is refused
    Limit("config_mb", 16, "MB of YAML"),  # a config file or a --set value (engine/config/safe_yaml.py)
    Limit("config_nodes", 1_000_000, "YAML values (aliases expanded)"),  # ... counted with its aliases expanded
    Limit("votes_per_visitor", 500, "votes per visitor"),  # the blind A/B test (app/ab_tab.py), every test together
)}


def limit(name: str) -> int:
    return LIMITS[name].value()


def too_large(name: str, got: int) -> str | None:
    """The message for a value above limit `name`, or None."""
    bound = LIMITS[name]
    if got <= bound.value():
        return None
    shown = f"{got:,}" if got < 10**30 else f"a number of {got.bit_length():,} bits"  # 5,000 digits have no str()
    return f"at most {bound.value():,} {bound.unit}, got {shown} (raise the limit with {bound.env})"


# Lists and mappings are shown a few levels and items deep: a full repr of a value that repeats
# itself (YAML aliases, or a dict built with shared parts) could take minutes and gigabytes.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxlong, _SHORT.maxother = 3, 200, 200, 200
_SHORT.maxtuple = _SHORT.maxlist = _SHORT.maxdict = _SHORT.maxset = _SHORT.maxfrozenset = _SHORT.maxdeque = 8


def excerpt(value, chars: int = 60) -> str:
    """repr(value) cut to about `chars` characters: error messages never echo long input."""
    try:
        text = repr(value) if isinstance(value, (str, int, float, type(None))) else _SHORT.repr(value)
    except ValueError:  # an int of more than 4,300 digits has no repr
        if isinstance(value, int):
            return f"a number of {value.bit_length():,} bits"
        return f"a {type(value).__name__} holding a number too long to show"
    if len(text) <= chars:
        return text
    size = f" ({len(value):,} characters)" if isinstance(value, str) else ""
    return text[:chars] + "…" + size
