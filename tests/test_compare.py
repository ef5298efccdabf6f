"""The Compare view's engine side: base and tuned from the same noise, scored by every reward."""
import numpy as np
import pytest
import torch

from engine import compare
from engine.models import build_model
from engine.training.trainer import Trainer


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, request):
    from engine.config import load_config

    out = tmp_path_factory.mktemp("run")
    cfg = load_config("configs/g2rpo.yaml", [
        "model.name=tiny-flux", "rewards=[{name: brightness}]", 'prompts=["a red circle on a black background"]',
        "algorithm.group_size=4", "algorithm.branch_steps=[0,1]", "sampling.steps=8", "train.iterations=2",
        "train.learning_rate=0.05", "train.checkpoint_every=2", "train.sample_every=1000", "train.eval_every=0"])
    trainer = Trainer(cfg, out)
    trainer.run(progress=False)
    return trainer, str(out / "checkpoints" / "iter_000002")


def test_base_and_tuned_share_the_noise_and_the_tuned_rows_are_the_trained_model(tuned):
    trainer, folder = tuned
    prompts, seeds = ["a red circle on a black background", "two blue squares on a white background"], [0, 5]
    rows = compare.generate({"name": "tiny-flux"}, [None, folder, None], prompts, seeds,
                            ["brightness", "saturation"], steps=8)
    assert [(r["adapter"], r["prompt"], r["seed"]) for r in rows[:4]] == [
        (None, prompts[0], 0), (None, prompts[0], 5), (None, prompts[1], 0), (None, prompts[1], 5)]
    base, lora, base_again = (np.stack([r["image"] for r in rows[i:i + 4]]) for i in (0, 4, 8))
    assert base.dtype == np.uint8 and base.shape == (4, 16, 16, 3)
    assert np.array_equal(base, base_again)  # switching the adapter off restores the base exactly
    assert not np.array_equal(base, lora)

    fresh = compare.sample(build_model(trainer.cfg.model), prompts, seeds, 8, 3.0)
    assert np.array_equal(base, (fresh * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    own = compare.sample(trainer.model, prompts, seeds, 8, 3.0)  # the trainer's LoRA-carrying model
    assert np.abs(lora.astype(int) - (own * 255).round().permute(0, 2, 3, 1).numpy()).max() <= 1
    for row in rows:
        assert set(row["scores"]) == {"brightness", "saturation"}
    assert rows[4]["scores"]["brightness"] == pytest.approx(float(own[0].mean()), abs=1e-5)


def test_a_missing_lora_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no LoRA weights"):
        compare.generate({"name": "tiny-flux"}, [str(tmp_path)], ["a red circle on a black background"], [0], [])
