"""A procedural world of captioned images: coloured shapes on a plain background.

A scene is (colour, shape, count, background, size). Captions read like
"two red circles on a black background" or "a large blue square on a white background";
the size word is optional, and a scene without one gets its size from the render seed.
Rendering is plain numpy, deterministic from (spec, seed), and exact: every pixel is either
the background colour or the object colour, which is what lets the verifiers in
engine/rewards/verifiers.py check a generated image against its prompt from pixels alone.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:  # torch only for the tensor helpers: prompts and captions stay torch-free
    import torch

# RGB in [0, 1]. Object colours are pairwise >= 0.47 apart (and from every background), so a
# nearest-palette lookup with a distance threshold survives blur and noise.
COLOURS = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.75, 0.10),
    "blue": (0.10, 0.20, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.60, 0.15, 0.80),
    "white": (1.00, 1.00, 1.00),
}
BACKGROUNDS = {
    "black": (0.00, 0.00, 0.00),
    "white": (1.00, 1.00, 1.00),
    "gray": (0.50, 0.50, 0.50),
}
PALETTE = {**COLOURS, **BACKGROUNDS}  # every colour that can appear in a clean render
SHAPES = ("circle", "square", "triangle")
COUNTS = (1, 2, 3)
SIZES = ("small", "large")
COUNT_WORDS = {1: "a", 2: "two", 3: "three"}
# Object side as a fraction of the image side: 9px and 13px at 32x32, large enough that a 4x4-pixel
# token model can draw a triangle's slope and a circle's round edge (at 7px they were blobs).
SIZE_FRACTION = {"small": 9 / 32, "large": 13 / 32}
GAP = 2  # px kept free between objects
# Object corners sit on a lattice of 1/8 of the image side (4 px at 32x32: the built-in model's token
# size), 1/32 of the side in from the border (which stays background for the background check). So
# an object always covers the model's tokens the same way wherever it is placed: the model learns one
# stencil per shape and size instead of sixteen sub-token shifts of it.
LATTICE_FRACTION, MARGIN_FRACTION = 1 / 8, 1 / 32

# Held-out combinations: every single word still occurs in training, only these pairings don't.
HELD_OUT_COLOUR_SHAPE = {("red", "triangle"), ("blue", "circle")}
HELD_OUT_COLOUR_BACKGROUND = {("green", "white"), ("purple", "black")}


@dataclass(frozen=True)
class SceneSpec:
    """What a caption says. `size=None` means the caption names no size (the seed picks one)."""

    colour: str
    shape: str
    count: int
    background: str
    size: Optional[str] = None

    def __post_init__(self):
        checks = [
            (self.colour in COLOURS, f"colour {self.colour!r}"),
            (self.shape in SHAPES, f"shape {self.shape!r}"),
            (self.count in COUNTS, f"count {self.count!r}"),
            (self.background in BACKGROUNDS, f"background {self.background!r}"),
            (self.size is None or self.size in SIZES, f"size {self.size!r}"),
        ]
        for ok, what in checks:
            if not ok:
                raise ValueError(f"unknown {what}")
        if self.colour == self.background:
            # the objects would be invisible
            raise ValueError(f"object colour equals background colour ({self.colour})")


PromptSpec = SceneSpec  # a parsed prompt is a scene spec whose size may be unspecified


# ----------------------------------------------------------------------------- captions

def _plural(shape: str, count: int) -> str:
    return shape if count == 1 else shape + "s"


def caption(spec: SceneSpec) -> str:
    words = [COUNT_WORDS[spec.count]]
    if spec.size is not None:
        words.append(spec.size)
    words += [spec.colour, _plural(spec.shape, spec.count), "on", "a", spec.background, "background"]
    return " ".join(words)


VOCABULARY = sorted(
    set(COUNT_WORDS.values()) | set(SIZES) | set(PALETTE) | set(SHAPES)
    | {s + "s" for s in SHAPES} | {"on", "background"}
)
_WORD_TO_COUNT = {w: c for c, w in COUNT_WORDS.items()}


@lru_cache(maxsize=4096)
def parse_prompt(prompt: str) -> SceneSpec:
    """Inverse of `caption`. Case-insensitive; a trailing full stop is allowed."""
    words = prompt.strip().rstrip(".").lower().split()
    unknown = [w for w in words if w not in VOCABULARY]
    if unknown:
        raise ValueError(f"unknown word {unknown[0]!r} in prompt {prompt!r}")
    # grammar: COUNT [SIZE] COLOUR SHAPE on a BACKGROUND background
    if words and len(words) > 1 and words[1] in SIZES:
        size, rest = words[1], words[:1] + words[2:]
    else:
        size, rest = None, words
    if len(rest) != 7 or rest[3:5] != ["on", "a"] or rest[6] != "background":
        raise ValueError(
            f"prompt {prompt!r} does not read 'COUNT [SIZE] COLOUR SHAPE on a BACKGROUND background'"
        )
    count_word, colour, shape_word, _, _, background, _ = rest
    if count_word not in _WORD_TO_COUNT:
        raise ValueError(f"expected a count word ({', '.join(_WORD_TO_COUNT)}), got {count_word!r}")
    count = _WORD_TO_COUNT[count_word]
    shape = shape_word[:-1] if shape_word.endswith("s") else shape_word
    if shape not in SHAPES or shape_word != _plural(shape, count):
        raise ValueError(f"expected {'a shape' if count == 1 else 'a plural shape'}, got {shape_word!r}")
    if colour not in COLOURS:
        raise ValueError(f"{colour!r} is not an object colour ({', '.join(COLOURS)})")
    if background not in BACKGROUNDS:
        raise ValueError(f"{background!r} is not a background colour ({', '.join(BACKGROUNDS)})")
    return SceneSpec(colour, shape, count, background, size)


# ----------------------------------------------------------------------------- prompt split

def is_held_out(spec: SceneSpec) -> bool:
    """The split rule: a prompt is held out for evaluation iff its (colour, shape) pair is in
    HELD_OUT_COLOUR_SHAPE or its (colour, background) pair is in HELD_OUT_COLOUR_BACKGROUND.
    Counts and sizes are never held out, so eval tests compositional generalisation to unseen
    pairings of words that all appear in training (108 of the 459 prompts, 23.5%)."""
    return ((spec.colour, spec.shape) in HELD_OUT_COLOUR_SHAPE
            or (spec.colour, spec.background) in HELD_OUT_COLOUR_BACKGROUND)


@lru_cache(maxsize=None)
def _specs(split: str) -> tuple[SceneSpec, ...]:
    if split not in ("all", "train", "eval"):
        raise ValueError(f"unknown split {split!r}; expected 'train', 'eval' or 'all'")
    specs = [
        SceneSpec(colour, shape, count, bg, size)
        for colour, shape, count, bg, size in itertools.product(
            COLOURS, SHAPES, COUNTS, BACKGROUNDS, (None,) + SIZES)
        if colour != bg
    ]
    if split != "all":
        specs = [s for s in specs if is_held_out(s) == (split == "eval")]
    return tuple(specs)


def all_prompts() -> list[str]:
    return [caption(s) for s in _specs("all")]


def train_prompts() -> list[str]:
    return [caption(s) for s in _specs("train")]


def eval_prompts() -> list[str]:
    """Held-out prompts: see `is_held_out` for the rule."""
    return [caption(s) for s in _specs("eval")]


# ----------------------------------------------------------------------------- rendering

def object_side(size_word: str, image_size: int) -> int:
    side = int(round(SIZE_FRACTION[size_word] * image_size)) | 1  # odd: symmetric shapes
    return max(3, side)


@lru_cache(maxsize=64)
def shape_mask(shape: str, side: int) -> np.ndarray:
    """Boolean [side, side] stencil. Fill ratios: square 1, circle ~0.78, triangle ~0.5."""
    yy, xx = np.mgrid[0:side, 0:side] + 0.5  # pixel centres
    c = side / 2
    if shape == "square":
        m = np.ones((side, side), bool)
    elif shape == "circle":
        m = (xx - c) ** 2 + (yy - c) ** 2 <= c * c
    elif shape == "triangle":
        m = np.abs(xx - c) <= yy / 2  # apex at top centre, base spans the bottom row
    else:
        raise ValueError(f"unknown shape {shape!r}")
    m.flags.writeable = False
    return m


def _place(rng: np.random.Generator, count: int, side: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners of `count` side x side boxes on the lattice, >= GAP px apart, inside the margin."""
    margin, step = max(1, round(MARGIN_FRACTION * size)), max(1, round(LATTICE_FRACTION * size))
    positions = (size - margin - side - margin) // step + 1  # lattice corners per axis
    if positions < 1 or (count > 1 and (positions - 1) * step < side + GAP):
        raise ValueError(f"image size {size} is too small for {count} objects of {side}px")
    for _ in range(50):  # random rejection sampling first, for varied layouts
        boxes = np.zeros((0, 2), int)
        for _ in range(count):
            candidates = margin + step * rng.integers(0, positions, size=(100, 2))  # 100 tries at once
            apart = (np.abs(candidates[:, None] - boxes[None]) >= side + GAP).any(-1).all(1)
            if not apart.any():
                break
            boxes = np.concatenate([boxes, candidates[apart.argmax()][None]])
        if len(boxes) == count:
            return [(int(y), int(x)) for y, x in boxes]
    # Fallback (tight fits only): distinct corners of the lattice, which are far enough apart (checked above).
    far = margin + step * (positions - 1)
    return [((margin, far)[c // 2], (margin, far)[c % 2]) for c in rng.permutation(4)[:count]]


def resolve_size(spec: SceneSpec, seed: int) -> str:
    """The concrete size of a render: the prompted one, or a seed-determined one."""
    if spec.size is not None:
        return spec.size
    return SIZES[int(np.random.default_rng([seed, 1]).integers(len(SIZES)))]


def render(spec: SceneSpec, seed: int, size: int = 32) -> np.ndarray:
    """uint8 [size, size, 3]. Deterministic from (spec, seed); layout depends only on seed."""
    side = object_side(resolve_size(spec, seed), size)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = _to_uint8(BACKGROUNDS[spec.background])
    stencil = shape_mask(spec.shape, side)
    for y, x in _place(np.random.default_rng(seed), spec.count, side, size):
        img[y:y + side, x:x + side][stencil] = _to_uint8(COLOURS[spec.colour])
    return img


def render_tensor(spec: SceneSpec, seed: int, size: int = 32) -> torch.Tensor:
    """float32 [3, size, size] in [0, 1]."""
    import torch

    return torch.from_numpy(render(spec, seed, size)).permute(2, 0, 1).float() / 255.0


def _to_uint8(rgb) -> np.ndarray:
    return np.round(np.asarray(rgb) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------- datasets

def sample_scenes(n: int, seed: int, split: str = "train") -> list[tuple[SceneSpec, int]]:
    """n (spec, render seed) pairs drawn uniformly (with replacement) from a split's prompts."""
    specs = _specs(split)
    rng = np.random.default_rng(seed)
    idx = rng.integers(len(specs), size=n)
    seeds = rng.integers(0, 2**31 - 1, size=n)
    return [(specs[i], int(s)) for i, s in zip(idx, seeds)]


def render_batch(scenes: list[tuple[SceneSpec, int]], size: int = 32) -> tuple[torch.Tensor, list[str]]:
    """Render (spec, seed) pairs: float [B, 3, size, size] in [0, 1] and their captions."""
    import torch

    if not scenes:
        return torch.zeros(0, 3, size, size), []
    arr = np.stack([render(spec, seed, size) for spec, seed in scenes])
    images = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0
    return images, [caption(spec) for spec, _ in scenes]
