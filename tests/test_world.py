"""The shapes world (engine/world) and its exact pixel verifiers (engine/rewards/verifiers)."""
import numpy as np
import pytest
import torch

from engine.rewards import build_reward
from engine.rewards import verifiers
from engine.world import (
    VOCABULARY, SceneSpec, all_prompts, caption, eval_prompts, parse_prompt, render,
    render_batch, render_tensor, sample_scenes, train_prompts,
)

NAMES = ["background", "colour", "shape", "count", "adherence"]


def scores(specs_seeds, prompts):
    images = torch.stack([render_tensor(spec, seed) for spec, seed in specs_seeds])
    return {n: verifiers.verify(images, prompts)[n] for n in NAMES}


# ----------------------------------------------------------------------------- world

def test_render_is_deterministic_and_well_formed():
    spec = SceneSpec("red", "circle", 3, "black", "large")
    a, b = render(spec, 7), render(spec, 7)
    assert a.dtype == np.uint8 and a.shape == (32, 32, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, render(spec, 8))  # the seed moves the objects
    assert render(spec, 7, size=64).shape == (64, 64, 3)
    t = render_tensor(spec, 7)
    assert t.shape == (3, 32, 32) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1
    # only two colours in a clean render: background and object
    assert len(np.unique(a.reshape(-1, 3), axis=0)) == 2


def test_captions():
    assert caption(SceneSpec("red", "circle", 2, "black")) == "two red circles on a black background"
    assert caption(SceneSpec("blue", "square", 1, "white", "large")) == (
        "a large blue square on a white background")
    with pytest.raises(ValueError):
        SceneSpec("white", "square", 1, "white")  # invisible objects are excluded


def test_parse_round_trip_over_all_prompts():
    prompts = all_prompts()
    assert len(prompts) == len(set(prompts))
    for p in prompts:
        assert caption(parse_prompt(p)) == p
        assert set(p.split()) <= set(VOCABULARY)
    assert parse_prompt("Three Small Green Triangles on a gray background.") == SceneSpec(
        "green", "triangle", 3, "gray", "small")


@pytest.mark.parametrize("prompt, word", [
    ("two red hexagons on a black background", "hexagons"),
    ("a red circle on a black background please", "please"),
])
def test_unknown_word_is_named(prompt, word):
    with pytest.raises(ValueError, match=word):
        parse_prompt(prompt)


def test_bad_grammar_raises():
    for p in ["two red circle on a black background", "a red circles on a black background",
              "red a circle on a black background", "a black circle on a red background"]:
        with pytest.raises(ValueError):
            parse_prompt(p)


def test_split():
    train, evals = set(train_prompts()), set(eval_prompts())
    assert not train & evals and train | evals == set(all_prompts())
    assert 0.15 <= len(evals) / len(all_prompts()) <= 0.25
    assert {w for p in train for w in p.split()} == set(VOCABULARY)
    assert eval_prompts() == eval_prompts()  # deterministic


def test_sample_scenes_and_render_batch():
    scenes = sample_scenes(16, seed=0)
    assert scenes == sample_scenes(16, seed=0)
    assert all(caption(spec) in set(train_prompts()) for spec, _ in scenes)
    assert all(caption(spec) in set(eval_prompts()) for spec, _ in sample_scenes(16, 0, "eval"))
    images, captions = render_batch(scenes)
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.float32
    assert captions == [caption(spec) for spec, _ in scenes]


# ----------------------------------------------------------------------------- verifiers

def test_clean_renders_score_one():
    scenes = sample_scenes(128, seed=1, split="all")
    images, captions = render_batch(scenes)
    for name in NAMES:
        reward = build_reward(name)
        assert reward.name == name and reward.held_out == (name != "adherence")
        assert torch.equal(reward(images, captions), torch.ones(128)), name


def test_mild_noise_keeps_scores_high():
    scenes = sample_scenes(64, seed=2, split="all")
    images, captions = render_batch(scenes)
    noisy = (images + 0.05 * torch.randn(images.shape, generator=torch.Generator().manual_seed(0)))
    s = verifiers.verify(noisy.clamp(0, 1), captions)
    for name in NAMES:
        assert s[name].min() > 0.9, name


def test_blank_image_scores_zero_except_background():
    black = torch.zeros(1, 3, 32, 32)
    s = verifiers.verify(black, ["a red circle on a black background"])
    assert s["background"].item() == 1 and s["colour"].item() == 0
    assert s["shape"].item() == 0 and s["count"].item() == 0


@pytest.mark.parametrize("rendered, low, high", [
    (SceneSpec("blue", "circle", 2, "black", "large"), ["colour", "count"], ["shape", "background"]),
    (SceneSpec("red", "square", 2, "black", "large"), ["shape"], ["colour", "count", "background"]),
    (SceneSpec("red", "triangle", 2, "black", "small"), ["shape"], ["colour", "count", "background"]),
    (SceneSpec("red", "circle", 3, "black", "large"), ["count"], ["colour", "shape", "background"]),
    (SceneSpec("red", "circle", 1, "black", "small"), ["count"], ["colour", "shape", "background"]),
    (SceneSpec("red", "circle", 2, "white", "large"), ["background"], ["colour", "shape", "count"]),
])
def test_wrong_attribute_scores_low_on_that_verifier(rendered, low, high):
    prompt = "two red circles on a black background"
    s = scores([(rendered, seed) for seed in range(4)], [prompt] * 4)
    for name in low:
        assert s[name].max() < 0.5, (name, s[name])
    for name in high:
        assert s[name].min() == 1.0, (name, s[name])
    assert s["adherence"].max() < 1.0
