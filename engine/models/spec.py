"""What a small model accepts, without torch: its architecture spec and the prompt check.

The UI and the jobs API validate configs with these before any job is queued, in a process that
never imports torch.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.config.limits import excerpt
from engine.world.scenes import VOCABULARY as DEFAULT_VOCABULARY  # the built-in world's words


@dataclass
class TinyFluxSpec:
    """Architecture of the small model (kept with its weights so they always load together)."""

    resolution: int = 16
    patch: int = 2
    num_layers: int = 1
    num_single_layers: int = 2
    num_heads: int = 2
    head_dim: int = 16
    text_dim: int = 32
    max_words: int = 12
    vocabulary: list[str] = field(default_factory=lambda: list(DEFAULT_VOCABULARY))


def tokenize(prompt: str) -> list[str]:
    return re.findall(r"[a-z]+", prompt.lower())


def check_prompt(prompt: str, vocabulary: list[str], max_words: int, quote: bool = True) -> list[str]:
    """The prompt's words, or a ValueError that names what is wrong (checked before any job).
    `quote=False` (a prompt from a file): the message names the unknown words but not the prompt."""
    words = tokenize(prompt)
    if not words:
        raise ValueError("empty prompt")
    known = set(vocabulary)
    unknown = list(dict.fromkeys(w for w in words if w not in known))
    if unknown:  # quoted short and cut: the prompt may come from a file
        more = f" and {len(unknown) - 3:,} more" if len(unknown) > 3 else ""
        where = f" in prompt {excerpt(prompt, 40)}" if quote else ""
        raise ValueError(f"unknown word(s) {', '.join(excerpt(w, 20) for w in unknown[:3])}{more}{where}; "
                         f"the model knows: {' '.join(vocabulary)}")
    if len(words) > max_words:
        raise ValueError(f"{'prompt ' + excerpt(prompt, 40) if quote else 'the prompt'} has {len(words):,} words; "
                         f"the model takes at most {max_words}")
    return words


def builtin_spec() -> TinyFluxSpec:
    """The built-in model's architecture, as its weights were trained (tokens are 4x4 pixel patches)."""
    return TinyFluxSpec(resolution=32, patch=4, num_layers=2, num_single_layers=2, num_heads=4, head_dim=32,
                        text_dim=64, max_words=10, vocabulary=list(DEFAULT_VOCABULARY))
