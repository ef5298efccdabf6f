"""Exact verifiers for the shapes world (engine/world): does an image show what its prompt says?

Each pixel is snapped to the nearest palette colour (or "unknown" if none is close), then:
  background  fraction of the 1px image border that is the prompted background colour
  colour      fraction of object (non-background) pixels that are the prompted object colour,
              counting interior pixels only (blur makes in-between colours at the edges)
  shape       fraction of object blobs (pixels nearer the dominant object colour than the
              background) whose (bounding-box fill ratio, top/bottom mass ratio) is nearest the
              prompted shape's: square (1, 1), circle (0.78, 1), triangle (0.5, 0.3)
  count       1 if the number of blobs of the prompted colour is the prompted count, else
              0.25 ** |error| (0 when there are none)
  adherence   mean of the four: a GenEval-like score in [0, 1]
A clean render of the prompt scores exactly 1 on all of them; mild noise barely moves them.
Whether a verifier counts as in- or out-of-domain is decided per config by the UI/eval, so all
of them keep `held_out = False`.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.rewards.base import Reward, register_reward
from engine.world.scenes import PALETTE, SHAPES, parse_prompt

_NAMES = list(PALETTE)
_RGB = np.array([PALETTE[n] for n in _NAMES], np.float32)  # [K, 3]
MAX_DIST = 0.3  # RGB distance beyond which a pixel matches no palette colour
MIN_AREA_FRACTION = 0.005  # blobs smaller than this share of the image are noise (5px at 32x32)
# (bounding-box fill ratio, top-half / bottom-half pixels) of each shape; blobs take the nearest.
_PROTOTYPES = {"circle": (0.78, 1.0), "square": (1.0, 1.0), "triangle": (0.5, 0.3)}
_FEATURES = np.array([_PROTOTYPES[s] for s in SHAPES])  # [S, 2]


def snap_to_palette(images: np.ndarray) -> np.ndarray:
    """[B, H, W, 3] floats -> [B, H, W] palette indices, -1 where no colour is within MAX_DIST."""
    d2 = ((images[..., None, :] - _RGB) ** 2).sum(-1)  # [B, H, W, K]
    idx = d2.argmin(-1)
    return np.where(np.take_along_axis(d2, idx[..., None], -1)[..., 0] <= MAX_DIST**2, idx, -1)


def label_components(mask: np.ndarray) -> np.ndarray:
    """4-connected components of a [B, H, W] bool mask, for the whole batch at once.

    Returns int labels, 0 off the mask; a blob's label is 1 + the flat index of its first pixel,
    so labels are unique across the batch. Min-label propagation with pointer jumping.
    """
    n = mask.size
    lab = np.where(mask, np.arange(1, n + 1).reshape(mask.shape), 0)
    big = n + 1
    for _ in range(n):
        cur = np.where(mask, lab, big)
        m = cur.copy()
        m[:, 1:] = np.minimum(m[:, 1:], cur[:, :-1])
        m[:, :-1] = np.minimum(m[:, :-1], cur[:, 1:])
        m[:, :, 1:] = np.minimum(m[:, :, 1:], cur[:, :, :-1])
        m[:, :, :-1] = np.minimum(m[:, :, :-1], cur[:, :, 1:])
        new = np.where(mask, m, 0)
        flat = new.reshape(-1)
        new = np.where(mask, flat[np.maximum(new, 1) - 1], 0)  # jump: adopt my label's label
        if np.array_equal(new, lab):
            break
        lab = new
    return lab


def blob_features(mask: np.ndarray):
    """Per blob of at least the minimum area: (image index, [fill ratio, top/bottom ratio])."""
    B, H, W = mask.shape
    lab = label_components(mask).reshape(-1)
    on = lab > 0
    ids, inv = np.unique(lab[on], return_inverse=True)
    if len(ids) == 0:
        return np.zeros(0, int), np.zeros((0, 2))
    pix = np.flatnonzero(on)
    ys, xs = (pix // W) % H, pix % W
    area = np.bincount(inv)
    y0 = np.full(len(ids), H); y1 = np.full(len(ids), -1)
    x0 = np.full(len(ids), W); x1 = np.full(len(ids), -1)
    np.minimum.at(y0, inv, ys); np.maximum.at(y1, inv, ys)
    np.minimum.at(x0, inv, xs); np.maximum.at(x1, inv, xs)
    h = y1 - y0 + 1
    fill = area / (h * (x1 - x0 + 1))
    # Rows in the top and bottom halves of the box (the middle row of an odd box is in neither).
    row = ys - y0[inv]
    top = np.bincount(inv, weights=row < h[inv] // 2, minlength=len(ids))
    bottom = np.bincount(inv, weights=row >= h[inv] - h[inv] // 2, minlength=len(ids))
    updown = top / np.maximum(bottom, 1)
    keep = area >= max(1, round(MIN_AREA_FRACTION * H * W))
    return (ids[keep] - 1) // (H * W), np.stack([fill, updown], 1)[keep]


def _interior(px: np.ndarray) -> np.ndarray:
    """[B, H, W] bool: pixels whose 4 neighbours share their label (edges blur into other colours)."""
    p = np.pad(px, ((0, 0), (1, 1), (1, 1)), mode="edge")
    c = p[:, 1:-1, 1:-1]
    return (c == p[:, :-2, 1:-1]) & (c == p[:, 2:, 1:-1]) & (c == p[:, 1:-1, :-2]) & (c == p[:, 1:-1, 2:])


def verify(images: torch.Tensor, prompts: list[str]) -> dict[str, torch.Tensor]:
    """All verifier scores for a batch: float [B, 3, H, W] in [0, 1] -> {name: float32 [B]}."""
    B, _, H, W = images.shape
    specs = [parse_prompt(p) for p in prompts]
    want_colour = np.array([_NAMES.index(s.colour) for s in specs])
    want_bg = np.array([_NAMES.index(s.background) for s in specs])
    want_shape = np.array([SHAPES.index(s.shape) for s in specs])
    want_count = np.array([s.count for s in specs])

    rgb = images.permute(0, 2, 3, 1).numpy().astype(np.float32)  # [B, H, W, 3]
    px = snap_to_palette(rgb)  # [B, H, W] palette indices
    border = np.concatenate([px[:, 0], px[:, -1], px[:, 1:-1, 0], px[:, 1:-1, -1]], 1)  # [B, P]
    background = (border == want_bg[:, None]).mean(1)

    # Objects are whatever known colour differs from the image's own background (the commonest
    # border colour), so a wrong background doesn't also spoil the colour and shape checks.
    K = len(_NAMES)
    votes = (border[..., None] == np.arange(K)).sum(1)  # [B, K]; unknown never votes
    actual_bg = votes.argmax(1)
    objects = (px >= 0) & (px != actual_bg[:, None, None])
    core = objects & _interior(px)
    core = np.where(core.any((1, 2))[:, None, None], core, objects)  # tiny blobs have no interior
    right = (core & (px == want_colour[:, None, None])).sum((1, 2))
    colour = right / np.maximum(core.sum((1, 2)), 1)

    # Shapes are judged on the outline between the dominant object colour and the background:
    # a pixel is inside if it is nearer the former. With blur this cuts edges at half height,
    # which keeps square corners that a palette-distance threshold would shave off.
    hist = (np.where(objects, px, K)[..., None] == np.arange(K)).sum((1, 2))  # [B, K]
    dominant = hist.argmax(1)
    d_obj = ((rgb - _RGB[dominant][:, None, None]) ** 2).sum(-1)
    d_bg = ((rgb - _RGB[actual_bg][:, None, None]) ** 2).sum(-1)
    has_objects = objects.any((1, 2))[:, None, None]
    img, feats = blob_features((d_obj < d_bg) & has_objects)
    guess = ((feats[:, None, :] - _FEATURES) ** 2).sum(-1).argmin(1)
    n_blobs = np.bincount(img, minlength=B)
    n_right = np.bincount(img, weights=guess == want_shape[img], minlength=B)
    shape = n_right / np.maximum(n_blobs, 1)

    img, _ = blob_features(px == want_colour[:, None, None])
    found = np.bincount(img, minlength=B)
    count = np.where(found > 0, 0.25 ** np.abs(found - want_count), 0.0)

    scores = {"background": background, "colour": colour, "shape": shape, "count": count}
    scores["adherence"] = np.mean(list(scores.values()), axis=0)
    return {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in scores.items()}


class _Verifier(Reward):
    key = ""

    def score(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        return verify(images, prompts)[self.key]


# One registered reward per verifier; each scores with `verify` and keeps its own column. The four
# single checks are held out (the out-of-domain columns); their mean, adherence, is a training reward
# (the role GenEval or CLIP score plays), like the learned `preference` (HPS's role).
for _key in ("background", "colour", "shape", "count", "adherence"):
    register_reward(_key)(type(f"{_key.title()}Reward", (_Verifier,), {"key": _key, "held_out": _key != "adherence"}))
