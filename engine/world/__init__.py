"""The procedural world of captioned images (coloured shapes on plain backgrounds)."""
from engine.world.scenes import (
    BACKGROUNDS,
    COLOURS,
    PALETTE,
    SHAPES,
    VOCABULARY,
    PromptSpec,
    SceneSpec,
    all_prompts,
    caption,
    eval_prompts,
    is_held_out,
    parse_prompt,
    render,
    render_batch,
    render_tensor,
    sample_scenes,
    train_prompts,
)

__all__ = [
    "BACKGROUNDS", "COLOURS", "PALETTE", "SHAPES", "VOCABULARY", "PromptSpec", "SceneSpec",
    "all_prompts", "caption", "eval_prompts", "is_held_out", "parse_prompt", "render",
    "render_batch", "render_tensor", "sample_scenes", "train_prompts",
]
