"""Checkpoints: the LoRA in the format stock diffusers loads, plus what an exact resume needs.

A checkpoint is written to a temporary folder and renamed into place, so a crash mid-save leaves
the previous checkpoint intact and never a half-written one.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from engine.models.base import FlowModel

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"


def checkpoint_dir(out_dir: Path, iteration: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"iter_{iteration:06d}"


def latest_checkpoint(out_dir: Path) -> Path | None:
    root = Path(out_dir) / "checkpoints"
    done = sorted(p for p in root.glob("iter_*") if p.is_dir() and not p.name.endswith(".tmp")) if root.exists() else []
    return done[-1] if done else None


def export_lora(model: FlowModel, folder: Path) -> None:
    """Save the transformer's LoRA as diffusers' `pytorch_lora_weights.safetensors`, with the
    adapter metadata (rank, alpha, targets) so `pipe.load_lora_weights(folder)` scales it right."""
    from diffusers.loaders import lora_pipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    transformer = model.transformer
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(transformer))
    loader = getattr(lora_pipeline, model.lora_loader)
    loader.save_lora_weights(folder, transformer_lora_layers=layers,
                             transformer_lora_adapter_metadata=transformer.peft_config["default"].to_dict())


def save_checkpoint(out_dir: Path, iteration: int, model: FlowModel, lora: bool, optimizer, config: dict) -> Path:
    """Save after `iteration` completed iterations; returns the checkpoint folder."""
    final = checkpoint_dir(out_dir, iteration)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if lora:
        export_lora(model, tmp)
    else:
        model.transformer.save_pretrained(tmp / "transformer")
    trainable = {n: p.detach().cpu().contiguous() for n, p in model.transformer.named_parameters() if p.requires_grad}
    save_file(trainable, tmp / "trainable.safetensors")
    torch.save({"iteration": iteration, "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                "config": config}, tmp / "training_state.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def load_checkpoint(folder: Path, model: FlowModel, optimizer) -> int:
    """Restore trained weights, optimizer and RNG from `folder`; returns the iterations done."""
    weights = load_file(Path(folder) / "trainable.safetensors")
    params = dict(model.transformer.named_parameters())
    missing = sorted(set(weights) - set(params))
    if missing:
        raise ValueError(f"checkpoint {folder} has weights the model lacks (different LoRA config?): {missing[:3]}")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    state = torch.load(Path(folder) / "training_state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["iteration"])
