"""Pixel-statistic rewards and the reward registry."""
import pytest
import torch

from engine.rewards import build_reward, reward_names


def test_registry_lists_the_builtin_rewards():
    names = reward_names()
    for name in ("jpeg_compressibility", "jpeg_incompressibility", "brightness", "saturation", "adherence"):
        assert name in names
    with pytest.raises(KeyError, match="unknown reward"):
        build_reward("nope")


def test_catalog_matches_the_reward_classes():
    """The torch-free catalog (used to validate configs and label the UI) agrees with the classes."""
    from engine.rewards.base import BUILTIN_REWARDS

    for name, (_, held_out) in BUILTIN_REWARDS.items():
        reward = build_reward(name)
        assert reward.name == name and reward.held_out == held_out


def test_validating_a_config_imports_no_torch():
    """The UI process validates launches without importing torch (it opens fast, never trains)."""
    import subprocess
    import sys

    code = ("import sys; from engine.config import load_config; "
            "load_config('configs/g2rpo.yaml', ['rewards=[{name: adherence}, {name: preference}]']); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_jpeg_rewards_prefer_flat_or_detailed_images():
    flat = torch.full((1, 3, 32, 32), 0.5)
    noisy = torch.rand((1, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    images, prompts = torch.cat([flat, noisy]), ["x", "x"]
    compress = build_reward("jpeg_compressibility")(images, prompts)
    incompress = build_reward("jpeg_incompressibility")(images, prompts)
    assert compress[0] > compress[1] and incompress[1] > incompress[0]
    assert torch.equal(compress, -incompress)


def test_brightness_and_saturation():
    black, white = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 1
    images = torch.cat([black, white, red])
    assert build_reward("brightness")(images, ["x"] * 3).tolist() == pytest.approx([0, 1, 1 / 3])
    assert build_reward("saturation")(images, ["x"] * 3).tolist() == pytest.approx([0, 0, 1])


def test_reward_input_is_checked():
    with pytest.raises(ValueError, match="prompts"):
        build_reward("brightness")(torch.zeros(2, 3, 8, 8), ["only one"])
    with pytest.raises(ValueError, match="expected images"):
        build_reward("brightness")(torch.zeros(2, 8, 8), ["a", "b"])


def test_a_world_reward_scores_samples_only_of_prompts_it_can_read():
    """The trainer scores its sample images with every reward that can read the sample prompts."""
    from engine.rewards.base import can_score

    assert can_score("brightness", ["a photo of a cat"])
    assert can_score("preference", ["a red circle on a black background", "two blue squares on a white background"])
    assert not can_score("preference", ["a red circle on a black background", "a photo of a cat"])
