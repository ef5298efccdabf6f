"""Time one FLUX-sized transformer step with random weights (nothing is downloaded):

    python -m engine.bench_flux                       # FLUX.1-dev's shape, 512 and 720 px, on the GPU
    python -m engine.bench_flux --size tiny           # the same code on a small shape (CPU check)

For each resolution it prints the seconds and peak GPU memory of the two calls a G²RPO iteration is
made of: a rollout call (forward, no gradient) and a training call (forward and backward through
a LoRA, with gradient checkpointing as configured), for a micro-batch of `--batch` samples.
"""
from __future__ import annotations

import argparse
import time

import torch

# FLUX.1-dev's transformer (black-forest-labs/FLUX.1-dev, transformer/config.json): 11.9B parameters.
FLUX_DEV = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                axes_dims_rope=(16, 56, 56))
TINY = dict(FLUX_DEV, num_layers=1, num_single_layers=2, attention_head_dim=16, num_attention_heads=2,
            joint_attention_dim=32, pooled_projection_dim=16, axes_dims_rope=(4, 6, 6))


def build(size: str, device, dtype, lora_rank: int, checkpointing: bool):
    from diffusers import FluxTransformer2DModel
    from peft import LoraConfig

    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # created in bf16 on the GPU: 12B float32 weights would not fit beside
    try:
        with torch.device(device):  # initialise on the device: the weights never touch the CPU
            model = FluxTransformer2DModel(**(FLUX_DEV if size == "full" else TINY))
    finally:
        torch.set_default_dtype(default)
    model.requires_grad_(False)
    model.add_adapter(LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    if checkpointing:
        model.enable_gradient_checkpointing()
    return model


def inputs(model, resolution: int, batch: int, text_tokens: int, device, dtype):
    config = model.config
    side = resolution // 16  # VAE 8x, then 2x2 packing
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    img_ids = torch.stack([torch.zeros_like(rows), rows, cols], -1).reshape(-1, 3).to(device, dtype)
    return dict(
        hidden_states=torch.randn(batch, side * side, config.in_channels, device=device, dtype=dtype),
        encoder_hidden_states=torch.randn(batch, text_tokens, config.joint_attention_dim, device=device, dtype=dtype),
        pooled_projections=torch.randn(batch, config.pooled_projection_dim, device=device, dtype=dtype),
        timestep=torch.full((batch,), 0.5, device=device, dtype=dtype),
        guidance=torch.full((batch,), 3.5, device=device, dtype=torch.float32),
        img_ids=img_ids, txt_ids=torch.zeros(text_tokens, 3, device=device, dtype=dtype), return_dict=False)


def timed(fn, device, repeats: int) -> tuple[float, float]:
    """(median seconds, peak GiB of GPU memory; 0 on the CPU) over `repeats` calls after one warm-up."""
    fn()
    seconds = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return sorted(seconds)[len(seconds) // 2], peak


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m engine.bench_flux", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[512, 720])
    parser.add_argument("--batch", type=int, default=1, help="samples per call (the config's micro_batch)")
    parser.add_argument("--text-tokens", type=int, default=512)
    parser.add_argument("--lora-rank", type=int, default=32)
    parser.add_argument("--no-checkpointing", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = build(args.size, device, dtype, args.lora_rank, not args.no_checkpointing)
    params = sum(p.numel() for p in model.parameters()) / 1e9
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{args.size} FLUX transformer, {params:.2f}B parameters, {dtype}, {name}, batch {args.batch}, "
          f"{args.text_tokens} text tokens, LoRA r{args.lora_rank}, checkpointing {not args.no_checkpointing}")
    print(f"{'pixels':>7} {'tokens':>7} {'rollout s':>10} {'train s':>9} {'rollout GiB':>12} {'train GiB':>10}")
    rows = []
    for resolution in args.resolutions:
        kwargs = inputs(model, resolution, args.batch, args.text_tokens, device, dtype)

        def rollout():
            with torch.no_grad():
                model(**kwargs)

        def train():
            model(**kwargs)[0].float().square().mean().backward()

        rollout_s, rollout_gib = timed(rollout, device, args.repeats)
        train_s, train_gib = timed(train, device, args.repeats)
        model.zero_grad(set_to_none=True)
        row = dict(resolution=resolution, tokens=kwargs["hidden_states"].shape[1], rollout_s=rollout_s,
                   train_s=train_s, rollout_gib=rollout_gib, train_gib=train_gib)
        rows.append(row)
        print(f"{resolution:>7} {row['tokens']:>7} {rollout_s:>10.3f} {train_s:>9.3f} {rollout_gib:>12.1f} {train_gib:>10.1f}")
    return rows


if __name__ == "__main__":
    main()
