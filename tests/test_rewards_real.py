"""The learned reward models (CLIP score, PickScore, HPS-v2.1, ImageReward) on tiny random weights.

Nothing is downloaded: each model is a few-layer random network saved in its real format to a
temporary folder, with a real tokenizer built from a tiny vocabulary. The scores are checked
against a direct computation with the same network, not against the reward's own code path.
"""
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from engine.config import ConfigError, load_config
from engine.rewards import build_reward
from engine.rewards.pixels import OPENAI_MEAN, OPENAI_STD, fit, preprocess

PROMPTS = ["a red circle", "two blue squares on a white background", "a red circle", "three yellow triangles"]
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]  # not CLIP's, to see the preprocessor config is read


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No hub: HF_HUB_OFFLINE and an empty Hugging Face cache."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def clip_vocab() -> dict[str, int]:
    """Every byte as CLIP's byte-level BPE spells it, alone and word-final, plus the two specials:
    with no merges each character is a token, which is enough to tell prompts apart."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(256 - len(printable))]
    return {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A random 2-layer CLIPModel at 32 px, saved as transformers saves one, with a tokenizer and a
    preprocessor config."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-clip")
    tokenizer = CLIPTokenizer(vocab=clip_vocab(), merges=[])
    tokenizer.save_pretrained(folder)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(**small, vocab_size=len(tokenizer), max_position_embeddings=77,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(**small, image_size=32, patch_size=8), projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "CLIPImageProcessor", "image_mean": MEAN, "image_std": STD, "crop_size": 32}))
    return folder


def images(n: int = 4, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def direct_cosine(folder, pixels: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """cos(image i, prompt i) from CLIPModel's own forward (fixed-length padding, its normalised embeddings)."""
    from transformers import AutoTokenizer, CLIPModel

    model, tokenizer = CLIPModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    tokens = tokenizer(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, pixel_values=pixels)
    return (out.image_embeds * out.text_embeds).sum(-1)


# ---------------------------------------------------------------- preprocessing


def test_crop_matches_pil_resize_and_centre_crop():
    """Shortest side to 24 then the centre square, as CLIP's PIL/torchvision transform does."""
    x = torch.rand(1, 3, 40, 60, generator=torch.Generator().manual_seed(2))
    ours = fit(x, 24, "crop")[0]
    pil = Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    pil = pil.resize((36, 24), Image.BICUBIC).crop((6, 0, 30, 24))  # int(24 * 60 / 40) = 36 wide, centre 24
    reference = torch.from_numpy(np.array(pil)).permute(2, 0, 1).float() / 255
    assert ours.shape == (3, 24, 24)
    assert (ours - reference).abs().mean() < 0.01 and (ours - reference).abs().max() < 0.05


def test_pad_fits_the_longest_side_on_black():
    out = fit(torch.ones(2, 3, 20, 40), 16, "pad")  # 20x40 -> 8x16, 4 black rows above and below
    assert out.shape == (2, 3, 16, 16)
    assert out[:, :, :4].abs().max() == 0 and out[:, :, 12:].abs().max() == 0
    assert torch.allclose(out[:, :, 4:12], torch.ones(2, 3, 8, 16), atol=1e-5)


def test_preprocess_normalises_with_the_given_statistics():
    x = images(2)
    expected = (x - torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)) / torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    assert torch.allclose(preprocess(x, 32, OPENAI_MEAN, OPENAI_STD), expected, atol=1e-6)  # 32 px: no resize


# ---------------------------------------------------------------- clip_score and pickscore


@pytest.mark.parametrize("name", ["clip_score", "pickscore"])
def test_clip_rewards_are_the_cosine_of_clip_embeddings(name, clip_folder, offline):
    reward = build_reward(name, str(clip_folder))
    x = images()
    scores = reward(x, PROMPTS)
    assert scores.shape == (4,) and scores.dtype == torch.float32 and torch.isfinite(scores).all()
    assert scores.abs().max() <= 1
    pixels = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)  # 32 px: no resize
    assert torch.allclose(scores, direct_cosine(clip_folder, pixels, PROMPTS), atol=1e-5)
    assert reward.held_out == (name == "pickscore")


def test_clip_score_resizes_larger_images(clip_folder, offline):
    reward = build_reward("clip_score", str(clip_folder))
    x = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(3))
    pixels = preprocess(x, 32, MEAN, STD)  # shortest side to 32, centre crop
    assert torch.allclose(reward(x, PROMPTS[:2]), direct_cosine(clip_folder, pixels, PROMPTS[:2]), atol=1e-5)


def test_clip_scores_do_not_depend_on_batching_or_the_prompt_cache(clip_folder, offline):
    from engine.rewards.clip_family import ClipScore

    x = images()
    whole = ClipScore(str(clip_folder), batch_size=32)(x, PROMPTS)
    one_by_one = ClipScore(str(clip_folder), batch_size=1)
    one_by_one.cache_size = 1  # every prompt evicted and recomputed
    assert torch.allclose(whole, one_by_one(x, PROMPTS), atol=1e-6)
    assert torch.allclose(whole, one_by_one(x, PROMPTS), atol=1e-6)
    assert len(one_by_one._prompts) == 1


def test_the_prompt_changes_the_score(clip_folder, offline):
    reward = build_reward("clip_score", str(clip_folder))
    x = images(1).repeat(3, 1, 1, 1)  # one image, three prompts
    scores = reward(x, ["a red circle", "a blue square", "a red circle"])
    assert scores[0] == scores[2] and scores[0] != scores[1]


# ---------------------------------------------------------------- validation, before anything is built


def problems(rewards: list[dict], **extra) -> str:
    with pytest.raises(ConfigError) as err:
        load_config({"rewards": rewards, **extra})
    return str(err.value)


def test_a_local_clip_folder_validates(clip_folder, offline):
    load_config({"rewards": [{"name": "clip_score", "model": str(clip_folder), "weight": 1.0},
                             {"name": "pickscore", "model": str(clip_folder), "weight": 0.5}]})


def test_an_unreachable_hub_id_says_what_to_download(offline):
    message = problems([{"name": "clip_score", "model": "nobody/does-not-exist"}])
    assert "nobody/does-not-exist" in message and "download" in message and "HF_HUB_OFFLINE" in message


def test_the_default_weights_are_checked_too(offline):
    message = problems([{"name": "brightness"}], eval_rewards=["clip_score", "image_reward"])
    assert "apple/DFN5B-CLIP-ViT-H-14-378" in message and "THUDM/ImageReward" in message


def test_a_missing_local_path_is_named(tmp_path, offline):
    missing = str(tmp_path / "no-such-model")
    assert "no such file or folder" in problems([{"name": "clip_score", "model": missing}])
    assert "no such file or folder" in problems([{"name": "hps", "model": missing}])


def test_a_file_where_a_folder_is_needed(clip_folder, offline):
    message = problems([{"name": "clip_score", "model": str(clip_folder / "config.json")}])
    assert "is a file" in message


def test_pickscore_folder_without_tokenizer_needs_the_base_tokenizer(clip_folder, tmp_path, offline):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((clip_folder / "config.json").read_text())
    assert "laion/CLIP-ViT-H-14-laion2B-s32B-b79K" in problems([{"name": "pickscore", "model": str(bare)}])


def test_hps_without_open_clip_names_the_package(monkeypatch, offline):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # find_spec answers None: as if not installed
    message = problems([{"name": "hps"}])
    assert "open_clip_torch" in message and "pip install" in message


def test_built_in_rewards_take_no_model(tmp_path):
    assert "takes no model path" in problems([{"name": "brightness", "model": str(tmp_path)}])
    with pytest.raises(ValueError, match="takes no model path"):
        build_reward("brightness", str(tmp_path))


def test_validating_model_rewards_imports_no_torch(clip_folder):
    import os
    import subprocess

    code = ("import sys; from engine.config import load_config; "
            f"load_config({{'rewards': [{{'name': 'clip_score', 'model': {str(clip_folder)!r}}}]}}); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_catalog_matches_the_model_reward_classes():
    import importlib

    from engine.rewards.base import _REGISTRY, held_out_rewards
    from engine.rewards.sources import MODEL_REWARDS

    for name, spec in MODEL_REWARDS.items():
        importlib.import_module(spec.module)  # optional packages are imported when a reward loads, not here
        assert _REGISTRY[name].name == name and _REGISTRY[name].held_out == spec.held_out
    assert {"pickscore", "image_reward"} <= set(held_out_rewards())
    assert not {"hps", "clip_score"} & set(held_out_rewards())


# ---------------------------------------------------------------- image_reward (transformers' BLIP, no package)

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
              *"a red circle two blue squares on white background three yellow triangles".split()]


@pytest.fixture(scope="module")
def image_reward_files(tmp_path_factory):
    """A tiny random ImageReward checkpoint under the package's own parameter names, and a BERT tokenizer."""
    from transformers import BertTokenizer

    from engine.rewards.image_reward import Arch

    folder = tmp_path_factory.mktemp("tiny-image-reward")
    BertTokenizer(vocab={w: i for i, w in enumerate(TINY_VOCAB)}).save_pretrained(folder / "tokenizer")
    arch = Arch(image_size=32, patch_size=8, vision_width=48, vision_layers=2, vision_heads=4, text_width=32,
                text_layers=2, text_heads=4, vocab_size=len(TINY_VOCAB) + 2, max_positions=64, max_length=12)
    g = torch.Generator().manual_seed(4)

    def rand(*shape):
        return torch.randn(*shape, generator=g) * 0.3

    V, T = arch.vision_width, arch.text_width
    state = {"blip.visual_encoder.cls_token": rand(1, 1, V), "blip.visual_encoder.pos_embed": rand(1, 17, V),
             "blip.visual_encoder.patch_embed.proj.weight": rand(V, 3, 8, 8),
             "blip.visual_encoder.patch_embed.proj.bias": rand(V),
             "blip.visual_encoder.norm.weight": rand(V), "blip.visual_encoder.norm.bias": rand(V),
             "blip.vision_proj.weight": rand(8, V), "blip.vision_proj.bias": rand(8),  # unused by the score
             "blip.text_encoder.embeddings.position_ids": torch.arange(64)[None],
             "blip.text_encoder.embeddings.word_embeddings.weight": rand(arch.vocab_size, T),
             "blip.text_encoder.embeddings.position_embeddings.weight": rand(64, T),
             "blip.text_encoder.embeddings.LayerNorm.weight": rand(T),
             "blip.text_encoder.embeddings.LayerNorm.bias": rand(T)}
    for i in range(2):  # BLIP's timm ViT blocks
        b = f"blip.visual_encoder.blocks.{i}."
        for name, shape in [("norm1", (V,)), ("norm2", (V,))]:
            state[b + name + ".weight"], state[b + name + ".bias"] = rand(*shape), rand(*shape)
        linears = [("attn.qkv", (3 * V, V)), ("attn.proj", (V, V)), ("mlp.fc1", (4 * V, V)), ("mlp.fc2", (V, 4 * V))]
        for name, (out, inp) in linears:
            state[b + name + ".weight"], state[b + name + ".bias"] = rand(out, inp), rand(out)
    for i in range(2):  # BLIP's BERT layers, cross-attention to the image included
        b = f"blip.text_encoder.encoder.layer.{i}."
        for part, width in [("attention", T), ("crossattention", V)]:
            state[f"{b}{part}.self.query.weight"], state[f"{b}{part}.self.query.bias"] = rand(T, T), rand(T)
            for kv in ("key", "value"):
                state[f"{b}{part}.self.{kv}.weight"], state[f"{b}{part}.self.{kv}.bias"] = rand(T, width), rand(T)
            state[f"{b}{part}.output.dense.weight"], state[f"{b}{part}.output.dense.bias"] = rand(T, T), rand(T)
            state[f"{b}{part}.output.LayerNorm.weight"], state[f"{b}{part}.output.LayerNorm.bias"] = rand(T), rand(T)
        state[b + "intermediate.dense.weight"], state[b + "intermediate.dense.bias"] = rand(4 * T, T), rand(4 * T)
        state[b + "output.dense.weight"], state[b + "output.dense.bias"] = rand(T, 4 * T), rand(T)
        state[b + "output.LayerNorm.weight"], state[b + "output.LayerNorm.bias"] = rand(T), rand(T)
    for i, (out, inp) in zip((0, 2, 4, 6, 7), [(1024, T), (128, 1024), (64, 128), (16, 64), (1, 16)]):
        state[f"mlp.layers.{i}.weight"], state[f"mlp.layers.{i}.bias"] = rand(out, inp), rand(out)
    torch.save(state, folder / "ImageReward.pt")
    return {"folder": folder, "arch": arch, "state": state}


def test_image_reward_loads_every_weight_from_the_checkpoint(image_reward_files):
    from engine.rewards.image_reward import load_image_reward

    files = image_reward_files
    net = load_image_reward(str(files["folder"] / "ImageReward.pt"), files["arch"])
    own, theirs = net.state_dict(), files["state"]
    assert torch.equal(own["vision.encoder.layers.1.self_attn.projection.weight"],
                       theirs["blip.visual_encoder.blocks.1.attn.proj.weight"])
    assert torch.equal(own["text.encoder.layer.0.crossattention.self.key.weight"],
                       theirs["blip.text_encoder.encoder.layer.0.crossattention.self.key.weight"])
    assert torch.equal(own["mlp.7.bias"], theirs["mlp.layers.7.bias"])


def test_image_reward_rejects_a_checkpoint_it_cannot_read(image_reward_files, tmp_path):
    from engine.rewards.image_reward import load_image_reward

    files = image_reward_files
    renamed = {k.replace("attn.qkv", "attn.qkv_renamed"): v for k, v in files["state"].items()}
    torch.save(renamed, tmp_path / "renamed.pt")
    with pytest.raises(KeyError, match="qkv_renamed"):
        load_image_reward(str(tmp_path / "renamed.pt"), files["arch"])
    partial = {k: v for k, v in files["state"].items() if "mlp.layers.7" not in k}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(RuntimeError, match="Missing key"):
        load_image_reward(str(tmp_path / "partial.pt"), files["arch"])


def test_image_reward_scores_on_the_standardised_scale(image_reward_files, offline):
    from transformers import AutoTokenizer

    from engine.rewards.image_reward import ImageReward

    files, x = image_reward_files, images()
    arch, tokenizer_folder = files["arch"], str(files["folder"] / "tokenizer")
    reward = ImageReward(str(files["folder"]), batch_size=4, tokenizer=tokenizer_folder, arch=arch)
    scores = reward(x, PROMPTS)
    assert scores.shape == (4,) and torch.isfinite(scores).all() and reward.held_out
    tokens = AutoTokenizer.from_pretrained(tokenizer_folder)(PROMPTS, padding="max_length", max_length=12,
                                                             truncation=True, return_tensors="pt")
    with torch.no_grad():
        raw = reward.net(preprocess(x, 32, OPENAI_MEAN, OPENAI_STD), tokens.input_ids, tokens.attention_mask)
    assert torch.allclose(scores, (raw - arch.mean) / arch.std, atol=1e-5)
    one_by_one = ImageReward(str(files["folder"] / "ImageReward.pt"), batch_size=1, tokenizer=tokenizer_folder,
                             arch=arch)
    assert torch.allclose(scores, one_by_one(x, PROMPTS), rtol=1e-4, atol=1e-4)  # float sums in another order
    assert scores[0] != reward(x[:1], ["two blue squares on a white background"])[0]


def test_image_reward_matches_the_packages_blip():
    """Where the image-reward package imports (transformers < 5, timm, fairscale, torchvision), our
    BLIP must give its BLIP's numbers. (Checked once by hand against the 1.5 wheel's code: equal.)"""
    vit = pytest.importorskip("ImageReward.models.BLIP.vit",
                              reason="image-reward 1.5 does not import with transformers 5, nor without torchvision")
    med = pytest.importorskip("ImageReward.models.BLIP.med")
    from engine.rewards.image_reward import Arch, ImageRewardNet, convert_checkpoint

    torch.manual_seed(0)
    visual = vit.VisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=4).eval()
    config = med.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=128, max_position_embeddings=64, hidden_act="gelu",
                            layer_norm_eps=1e-12, add_cross_attention=True)
    config.encoder_width = 48
    text = med.BertModel(config, add_pooling_layer=False).eval()
    arch = Arch(image_size=32, patch_size=8, vision_width=48, vision_layers=2, vision_heads=4, text_width=32,
                text_layers=2, text_heads=4, vocab_size=100, max_positions=64, max_length=12)
    ours = ImageRewardNet(arch).eval()
    state = {**{"blip.visual_encoder." + k: v for k, v in visual.state_dict().items()},
             **{"blip.text_encoder." + k: v for k, v in text.state_dict().items()},
             **{"mlp.layers." + k: v for k, v in ours.mlp.state_dict().items()}}
    ours.load_state_dict(convert_checkpoint(state), strict=True)
    pixels, ids = torch.randn(3, 3, 32, 32), torch.randint(1, 100, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 6:] = 0
    with torch.no_grad():
        image = visual(pixels)
        out = text(ids, attention_mask=mask, encoder_hidden_states=image,
                   encoder_attention_mask=torch.ones(image.shape[:2], dtype=torch.long), return_dict=True)
        assert torch.allclose(ours.mlp(out.last_hidden_state[:, 0]).squeeze(-1), ours(pixels, ids, mask), atol=1e-5)


# ---------------------------------------------------------------- hps (needs open_clip_torch)


def test_hps_is_the_cosine_of_open_clip_embeddings(tmp_path, offline):
    open_clip = pytest.importorskip("open_clip",
                                    reason="open_clip_torch is not installed (it needs torchvision: GPU machines)")
    from engine.rewards.clip_family import HPS

    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}
    (tmp_path / "tiny-hps-test.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "tiny-hps-test.json")
    torch.manual_seed(0)
    net = open_clip.create_model("tiny-hps-test", pretrained=None).eval()
    torch.save({"state_dict": net.state_dict()}, tmp_path / "HPS_v2.1_compressed.pt")

    x = images()
    for source in (tmp_path, tmp_path / "HPS_v2.1_compressed.pt"):  # a folder holding the file, or the file
        reward = HPS(str(source), batch_size=3, arch="tiny-hps-test")
        scores = reward(x, PROMPTS)
        with torch.no_grad():
            img = net.encode_image(preprocess(x, 32, OPENAI_MEAN, OPENAI_STD, "pad"), normalize=True)
            txt = net.encode_text(open_clip.get_tokenizer("tiny-hps-test")(PROMPTS), normalize=True)
        assert scores.shape == (4,) and torch.allclose(scores, (img * txt).sum(-1), atol=1e-5)
