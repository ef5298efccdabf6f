"""The branch explorer's store (engine/training/branches.py), its read side (jobs/branches.py) and its view
(app/branches.py): every member's image at every (prompt, k, λ) back in its place, ranked by mixed
advantage, within a bounded size, kept at the configured cadence by the trainer."""
import base64
import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from app import branches as view_branches
from engine.training.branches import MAX_PROMPTS, NUMBERS, BranchWriter, iteration_dir, stored_iterations
from engine.config import ConfigError, load_config
from engine.training.records import read_records
from engine.training.trainer import Trainer
from jobs import branches

L, K, P, G = 2, 3, 2, 4
STEPS, LAMBDAS = [0, 2, 5], [1, 3]


def coded_images(side: int = 16, prompts: int = P) -> torch.Tensor:
    """[L*K*P*G, 3, side, side] ordered (λ, k, prompt, member) as a rollout's: every image a flat
    colour that says which (λ, k, prompt, member) it is."""
    index = torch.arange(L * K * prompts * G, dtype=torch.float32)
    colour = torch.stack([index % 17 / 16, index // 17 % 17 / 16, torch.full_like(index, 0.5)], 1)
    return colour[:, :, None, None].expand(-1, 3, side, side).clone()


def record(prompts: int = P, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"branch_steps": STEPS, "granularities": LAMBDAS,
            "rewards": rng.random((1, prompts, K, L, G)).tolist(),
            "advantages": rng.normal(size=(1, prompts, K, L, G)).tolist(),
            "mixed_advantage": rng.normal(size=(prompts, K, G)).tolist(),
            "component_names": ["background", "colour"], "components": rng.random((2, prompts, K, G)).tolist()}


def expected_colour(images: torch.Tensor, lam: int, k: int, prompt: int, member: int, prompts: int = P) -> np.ndarray:
    row = ((lam * K + k) * prompts + prompt) * G + member
    return (images[row, :, 0, 0] * 255).round().to(torch.uint8).numpy()


def test_every_members_image_and_numbers_come_back_in_place_ranked_by_mixed_advantage(tmp_path):
    images, g = coded_images(), record()
    batch = ["a red circle on a black background", "two <b>blue</b> squares"]
    BranchWriter(tmp_path, 1, ["adherence"], is_main=True).write(7, images, (L, K, P, G), 0, batch, g)
    assert branches.iterations(tmp_path) == [7]
    for prompt in range(P):
        for ki, k in enumerate(STEPS):
            group = branches.group(tmp_path, 7, prompt, k)
            assert group["prompt"] == batch[prompt] and group["granularities"] == LAMBDAS
            mixed = np.array(g["mixed_advantage"][prompt][ki])
            order = [m["member"] for m in group["members"]]
            assert order == list(np.argsort(-mixed, kind="stable"))
            assert [m["mixed"] for m in group["members"]] == pytest.approx(sorted(mixed, reverse=True))
            for m in group["members"]:
                i = m["member"]
                assert m["components"] == pytest.approx({"background": g["components"][0][prompt][ki][i],
                                                         "colour": g["components"][1][prompt][ki][i]})
                for li, finish in enumerate(m["finishes"]):
                    assert finish["granularity"] == LAMBDAS[li] and finish["image"].size == (16, 16)
                    pixels = np.asarray(finish["image"])
                    assert (pixels == expected_colour(images, li, ki, prompt, i)).all()  # lossless, its own tile
                    assert finish["rewards"]["adherence"] == pytest.approx(g["rewards"][0][prompt][ki][li][i])
                    assert finish["z"]["adherence"] == pytest.approx(g["advantages"][0][prompt][ki][li][i])


def test_ranking_puts_ties_in_member_order_and_a_non_finite_advantage_last():
    assert branches.ranking(np.array([0.5, 2.0, np.nan, 2.0, -1.0])) == [1, 3, 0, 4, 2]


def test_large_images_are_kept_as_128_pixel_jpegs(tmp_path):
    images = coded_images(side=512)
    BranchWriter(tmp_path, 1, ["hps"], is_main=True).write(0, images, (L, K, P, G), 0, ["a", "b"], record())
    kept = sorted(p.name for p in iteration_dir(tmp_path, 0).iterdir())
    assert kept == [NUMBERS, "prompt_0000.jpg", "prompt_0001.jpg"]
    finish = branches.group(tmp_path, 0, 1, 2)["members"][0]["finishes"][1]
    assert finish["image"].size == (128, 128)
    member = branches.group(tmp_path, 0, 1, 2)["members"][0]["member"]
    error = np.abs(np.asarray(finish["image"]).astype(int) - expected_colour(images, 1, 1, 1, member)).mean()
    assert error < 3  # JPEG of a flat tile: a few levels off at most


def test_an_iteration_keeps_at_most_max_prompts_within_the_raw_size_of_its_tiles(tmp_path):
    prompts = MAX_PROMPTS + 2
    noise = torch.rand((L * K * prompts * G, 3, 32, 32), generator=torch.Generator().manual_seed(0))  # PNG's worst case
    writer = BranchWriter(tmp_path, 1, ["adherence"], is_main=True)
    writer.write(0, noise, (L, K, prompts, G), 0, [f"prompt {i}" for i in range(prompts)], record(prompts))
    folder = iteration_dir(tmp_path, 0)
    assert sorted(p.name for p in folder.glob("prompt_*")) == [f"prompt_{i:04d}.png" for i in range(MAX_PROMPTS)]
    raw = MAX_PROMPTS * K * L * G * 32 * 32 * 3
    numbers = (folder / NUMBERS).stat().st_size
    assert sum(p.stat().st_size for p in folder.iterdir()) <= raw * 1.02 + numbers
    assert numbers < 8_000
    assert len(branches.numbers(tmp_path, 0)["meta"]["prompts"]) == MAX_PROMPTS
    with pytest.raises(branches.BranchError, match=f"no prompt {MAX_PROMPTS} at iteration 0: it kept prompts 0–3"):
        branches.group(tmp_path, 0, MAX_PROMPTS, 0)


def test_a_second_process_writes_only_its_own_prompts_mosaics(tmp_path):
    images = coded_images(prompts=2)  # this process owns global prompts 2 and 3 of a batch of 4
    BranchWriter(tmp_path, 1, ["adherence"], is_main=False).write(3, images, (L, K, 2, G), 2, list("abcd"), record(4))
    assert sorted(p.name for p in iteration_dir(tmp_path, 3).iterdir()) == ["prompt_0002.png", "prompt_0003.png"]
    assert stored_iterations(tmp_path) == []  # the numbers (the main process's) mark it complete


def test_bad_choices_get_one_line_and_the_cadence_is_validated(tmp_path):
    writer = BranchWriter(tmp_path, 1, ["adherence"], is_main=True)
    writer.write(4, coded_images(), (L, K, P, G), 0, ["a", "b"], record())
    for args, message in (((5, 0, 0), r"iteration 5 has no stored branches \(stored: 4\)"),
                          ((4, 2, 0), "no prompt 2 at iteration 4"),
                          ((4, 0, 1), r"k = 1 is not a branch step of this run \(0, 2, 5\)")):
        with pytest.raises(branches.BranchError, match=message) as err:
            branches.group(tmp_path, *args)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="train.branch_every: must be >= 0"):
        load_config("configs/g2rpo.yaml", ["train.branch_every=-1"])
    assert load_config("configs/g2rpo.yaml").train.branch_every == 10  # a default run keeps some


def test_the_read_side_imports_no_torch(tmp_path):
    code = ("import sys; from jobs import branches; from app import branches as b; "
            f"branches.iterations({str(tmp_path)!r}); assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the trainer keeps them ------------------------------------------------------------------------

def test_the_trainer_keeps_each_due_iterations_branches_as_its_record_has_them(small_config, tmp_path):
    trainer = Trainer(small_config("train.branch_every=2", "train.iterations=3"), tmp_path)
    kept = {}
    write = trainer.branches.write
    trainer.branches.write = lambda it, images, *rest: (kept.setdefault(it, images.clone()), write(it, images, *rest))
    trainer.run(progress=False)
    assert branches.iterations(tmp_path) == [0, 2] == sorted(kept)
    records = read_records(tmp_path / "records.jsonl")
    for it in (0, 2):
        g = records[it]["g2rpo"]
        stored = branches.numbers(tmp_path, it)
        assert stored["meta"]["prompts"] == records[it]["prompts"]
        assert stored["rewards"] == pytest.approx(np.array(g["rewards"]), rel=1e-6)
        assert stored["advantages"] == pytest.approx(np.array(g["advantages"]), rel=1e-6, abs=1e-6)
        assert stored["mixed"] == pytest.approx(np.array(g["mixed_advantage"]), rel=1e-6, abs=1e-6)
        Lr, Kr, Pr, Gr = len(g["granularities"]), len(g["branch_steps"]), 2, 4
        rollout = kept[it].reshape(Lr, Kr, Pr, Gr, 3, 16, 16)
        for prompt in range(Pr):
            for ki, k in enumerate(g["branch_steps"]):
                for m in branches.group(tmp_path, it, prompt, k)["members"]:
                    for li, finish in enumerate(m["finishes"]):
                        image = (rollout[li, ki, prompt, m["member"]].permute(1, 2, 0) * 255).round().to(torch.uint8)
                        assert (np.asarray(finish["image"]) == image.numpy()).all()


@pytest.mark.parametrize("overrides", [["train.branch_every=0"], ["algorithm.name=dancegrpo"]])
def test_no_branches_when_off_or_for_a_method_that_does_not_branch(small_config, tmp_path, overrides):
    Trainer(small_config("train.iterations=1", *overrides), tmp_path).run(progress=False)
    assert not (tmp_path / "branches").exists()


def test_a_resumed_run_drops_the_branches_of_the_iterations_it_redoes(tmp_path):
    writer = BranchWriter(tmp_path, 2, ["r"], is_main=True)
    for it in (0, 2, 4):
        writer.write(it, coded_images(), (L, K, P, G), 0, ["a", "b"], record())
    BranchWriter(tmp_path, 2, ["r"], is_main=False, start_iteration=2)  # only the main process deletes
    assert stored_iterations(tmp_path) == [0, 2, 4]
    BranchWriter(tmp_path, 2, ["r"], is_main=True, start_iteration=2)
    assert stored_iterations(tmp_path) == [0]
    BranchWriter(tmp_path, 2, ["r"], is_main=True)  # a new run in the same folder: nothing of the old one
    assert not (tmp_path / "branches" / "iter_000000").exists()


# --- the Monitor's view ----------------------------------------------------------------------------

def decoded(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_the_view_ranks_members_captions_under_each_image_escapes_text_and_enlarges_pixels(tmp_path):
    images, g = coded_images(), record()
    BranchWriter(tmp_path, 1, ["<i>adherence</i>"], is_main=True).write(0, images, (L, K, P, G), 0,
                                                                          ["<script>x</script>", "b"], g)
    group = branches.group(tmp_path, 0, 0, 2)
    page = view_branches.group_html(group)
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<i>adherence" not in page and "&lt;i&gt;adherence&lt;/i&gt; " in page
    assert page.count("<figure>") == L * G and page.count("λ = 1</div>") == 1 and page.count("λ = 3</div>") == 1
    figures = page.split("<figure>")[1:]
    assert all(f.index("<img") < f.index("<figcaption>") for f in figures)  # the caption below, not over it
    best = group["members"][0]
    assert figures[0].count(f"member {best['member']}") == 2 and f"A {best['mixed']:+.2f}" in figures[0]
    assert "background" in figures[0] and "background" not in figures[G]  # verifiers on the finest λ's row
    assert decoded(figures[0].split('src="')[1].split('"')[0]).size == (128, 128)
    checker = Image.fromarray((np.indices((16, 16)).sum(0) % 2 * 255).astype(np.uint8)).convert("RGB")
    shown = np.asarray(decoded(view_branches._inline(checker)))
    assert shown.shape == (128, 128, 3) and set(np.unique(shown)) == {0, 255}  # nearest-neighbour: no blur
    assert (shown[:8, :8] == 0).all() and (shown[:8, 8:16] == 255).all()  # each pixel an 8x8 block


def test_the_view_follows_the_newest_iteration_and_sends_nothing_when_the_listing_is_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(branches, "run_folder", lambda run_id: tmp_path)
    view = {"run_id": 1, "run": {"config": {"train": {"branch_every": 2}}}}
    empty = view_branches.refresh(view, {}, None, None, None)
    assert empty[0] == {"run": 1, "iterations": []} and "every 2 iterations" in empty[4]
    writer = BranchWriter(tmp_path, 2, ["adherence"], is_main=True)
    writer.write(0, coded_images(), (L, K, P, G), 0, ["a", "b"], record())
    listed, iteration, prompt, k, page = view_branches.refresh(view, empty[0], None, None, None)
    assert iteration["value"] == 0 and prompt["choices"] == [("0: a", 0), ("1: b", 1)] and k["value"] == 0
    assert "<figure>" in page
    assert view_branches.refresh(view, listed, 0, 0, 0) == (view_branches.gr.skip(),) * 5
    writer.write(2, coded_images(), (L, K, P, G), 0, ["c", "d"], record())
    listed, iteration, prompt, k, page = view_branches.refresh(view, listed, 0, 1, 5)
    assert iteration["value"] == 2 and prompt["value"] == 1 and k["value"] == 5  # followed, choices kept
    writer.write(4, coded_images(), (L, K, P, G), 0, ["e", "f"], record())
    assert view_branches.refresh(view, listed, 0, 1, 5)[1]["value"] == 0  # an older one chosen: it stays
    assert "⚠️ k = 1 is not a branch step" in view_branches.show(view, 0, 0, 1)
