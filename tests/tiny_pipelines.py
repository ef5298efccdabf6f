"""Tiny randomly initialised FLUX and SD3 pipelines, saved as stock diffusers folders.

Every component is the real class (FluxTransformer2DModel, SD3Transformer2DModel, CLIPTextModel,
T5EncoderModel, AutoencoderKL, CLIP and T5 tokenizers), only small, so the adapters' code paths
run here exactly as on the full models, with nothing downloaded.
"""
from __future__ import annotations

import string
from pathlib import Path

import torch

WORDS = "a an the red blue green cat dog on of photo in snow painting small large".split()
RESOLUTION = 32  # pixels: the tiny VAE downsamples by 2, so 16x16 latents


def clip_tokenizer():
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in [*string.ascii_lowercase, *(c + "</w>" for c in string.ascii_lowercase), *(w + "</w>" for w in WORDS)]:
        vocab.setdefault(token, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def t5_tokenizer():
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("▁" + w, -1.0) for w in WORDS] + [(c, -5.0) for c in string.ascii_lowercase] + [("▁", -3.0)]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)


def clip_text_model(with_projection: bool = False, vocab_size: int = 80):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
                            bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def t5_model(d_model: int, vocab_size: int = 64):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=8, d_ff=37, num_layers=2,
                                   num_heads=4, relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1))


def vae(shift_factor: float, scaling_factor: float):
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                         up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 16], layers_per_block=1,
                         latent_channels=4, norm_num_groups=4, shift_factor=shift_factor,
                         scaling_factor=scaling_factor, use_quant_conv=False, use_post_quant_conv=False)


def save_tiny_flux(folder: Path, guidance_embeds: bool = True, seed: int = 0) -> Path:
    """A FLUX.1-dev-shaped pipeline (FLUX.1-schnell-shaped with guidance_embeds=False)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=guidance_embeds, axes_dims_rope=(4, 6, 6))
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=False),
        vae=vae(shift_factor=0.1159, scaling_factor=0.3611), text_encoder=clip_text_model(),
        tokenizer=clip_tokenizer(), text_encoder_2=t5_model(32), tokenizer_2=t5_tokenizer(), transformer=transformer)
    pipe.save_pretrained(folder)
    return Path(folder)


def save_tiny_sd3(folder: Path, seed: int = 0) -> Path:
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8, num_attention_heads=4,
        caption_projection_dim=32, joint_attention_dim=64, pooled_projection_dim=64, out_channels=4,
        pos_embed_max_size=16)
    pipe = StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae(shift_factor=0.0609, scaling_factor=1.5305),
        text_encoder=clip_text_model(True), tokenizer=clip_tokenizer(),
        text_encoder_2=clip_text_model(True), tokenizer_2=clip_tokenizer(),
        text_encoder_3=t5_model(64), tokenizer_3=t5_tokenizer(), transformer=transformer)
    pipe.save_pretrained(folder)
    return Path(folder)
