"""Checkpoints: the trained weights in a format stock diffusers loads, plus what an exact resume needs.

A LoRA run saves `pytorch_lora_weights.safetensors` (diffusers' LoRA format) with its model card
`README.md`, and the adapter's parameters as `trainable.safetensors`; a full fine-tuning run saves
the whole transformer as a diffusers model folder `transformer/` (sharded past 10 GB), its only
copy of the weights.
`training_state.pt` holds the iteration, the optimizer state, the config (and DiffusionNFT's EMA old policy).

Under multi-process training every process calls the functions that gather state (under FSDP that
is collective) and only the main process writes. A checkpoint is written to a temporary folder and
renamed into place, so a crash mid-save leaves the previous checkpoint intact and never a half-written one.

`checksums.json` lists every file's size and SHA-256. Resuming verifies them (`resume_checkpoint`):
a corrupt newest checkpoint is named, and the run continues from the newest intact one, saying so.
Checkpoints written before checksums existed are checked by loading their files instead.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from engine.training.checksums import CHECKSUMS, mismatch, write_checksums
from engine.training.errors import CheckpointError
from engine.training.model_card import CARD
from engine.models.base import FlowModel

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
TRAINABLE = "trainable.safetensors"
TRANSFORMER = "transformer"
FULL_WEIGHTS = "diffusion_pytorch_model{suffix}.safetensors"  # diffusers' names, so from_pretrained loads it
TRAINING_STATE = "training_state.pt"
NAME = re.compile(r"iter_\d{6}")


def checkpoint_dir(out_dir: Path, iteration: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"iter_{iteration:06d}"


def checkpoints(out_dir: Path) -> list[Path]:
    """Complete checkpoint folders, oldest first (a .tmp folder is a save that never finished)."""
    root = Path(out_dir) / "checkpoints"
    return sorted(p for p in root.iterdir() if p.is_dir() and NAME.fullmatch(p.name)) if root.exists() else []


def latest_checkpoint(out_dir: Path) -> Path | None:
    done = checkpoints(out_dir)
    return done[-1] if done else None


def corruption(folder: Path, lora: bool) -> str | None:
    """Why checkpoint `folder` cannot be resumed from, or None when it is intact."""
    needed = [TRAINING_STATE, TRAINABLE if lora else TRANSFORMER]
    missing = [name for name in needed if not (folder / name).exists()]
    if missing:
        return f"{', '.join(missing)} missing"
    if not (folder / CHECKSUMS).exists():
        return _unloadable(folder, lora)  # written before checksums: can its files be read?
    return mismatch(folder)


def _unloadable(folder: Path, lora: bool) -> str | None:
    files = [folder / TRAINABLE] if lora else sorted((folder / TRANSFORMER).glob("*.safetensors"))
    try:
        for path in files:
            with safe_open(path, "pt") as f:
                for name in f.keys():
                    f.get_tensor(name)
        torch.load(folder / TRAINING_STATE, weights_only=False, mmap=True)
    except Exception as err:  # a truncated or overwritten file: torch and safetensors raise many kinds
        return f"cannot be loaded ({type(err).__name__})"
    return None


def resume_checkpoint(out_dir: Path, lora: bool, say=warnings.warn) -> Path | None:
    """The newest intact checkpoint of the run in `out_dir` (None: none was saved). A corrupt newer
    one is named through `say`; CheckpointError if checkpoints exist and none is intact."""
    out_dir, skipped = Path(out_dir), []
    for folder in reversed(checkpoints(out_dir)):
        reason = corruption(folder, lora)
        if reason is None:
            if skipped:
                also = f"; also corrupt: {'; '.join(skipped[1:])}" if len(skipped) > 1 else ""
                say(f"checkpoint {skipped[0]} is corrupt; resuming from {folder.relative_to(out_dir)}, "
                    f"the newest intact one{also}")
            return folder
        skipped.append(f"{folder.relative_to(out_dir)} ({reason})")
    if skipped:
        raise CheckpointError(f"no checkpoint of {out_dir} can be resumed from: {'; '.join(skipped)}. "
                              "Start a new run, or delete the corrupt checkpoints to train from the start")
    return None


def export_lora(model: FlowModel, folder: Path, card: str | None = None) -> None:
    """Save the transformer's LoRA as diffusers' `pytorch_lora_weights.safetensors`, with the
    adapter metadata (rank, alpha, targets) so `pipe.load_lora_weights(folder)` scales it right,
    and its model card (`card`, engine/training/model_card.py) as README.md."""
    from diffusers.loaders import lora_pipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    transformer = model.transformer
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(transformer))
    # The same LoRA must be the same file, so that its checksum can be published: peft keeps
    # target_modules as a set, ordered by the process's hash seed (sorted here), and safetensors
    # writes its metadata in a Rust HashMap's order, which changes from process to process
    # (sorted after the save).
    metadata = transformer.peft_config["default"].to_dict()
    if isinstance(metadata.get("target_modules"), (list, set, tuple)):
        metadata["target_modules"] = sorted(metadata["target_modules"])
    loader = getattr(lora_pipeline, model.lora_loader)
    loader.save_lora_weights(folder, transformer_lora_layers=dict(sorted(layers.items())),
                             transformer_lora_adapter_metadata=metadata)
    sort_metadata(Path(folder) / LORA_WEIGHTS)
    if card is not None:
        (Path(folder) / CARD).write_text(card)


def sort_metadata(path: Path) -> None:
    """Rewrite a safetensors file's header with its `__metadata__` keys in sorted order. The header
    keeps its length (it is padded with spaces, as the format allows), so the tensors stay in place."""
    with open(path, "r+b") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        if "__metadata__" not in header:
            return
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > size:  # cannot happen for a reordering; leave the file as safetensors wrote it
            return
        f.seek(8)
        f.write(text.ljust(size, b" "))


def optimizer_state(model: nn.Module, optimizer, sharded: bool) -> dict:
    """The optimizer state to save. Unsharded (one process, DDP) it is alike on every process; under
    FSDP each process holds a shard, and gathering the full state is collective (it lands on the
    main process)."""
    if not sharded:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, getattr(optimizer, "optimizer", optimizer),
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_checkpoint(out_dir: Path, iteration: int, model: FlowModel, weights: dict[str, torch.Tensor], optimizer: dict,
                    config: dict, transformer_config: str | None = None,
                    old_policy: list[torch.Tensor] | None = None, card: str | None = None) -> Path:
    """Save after `iteration` completed iterations (main process only); returns the checkpoint folder.

    `weights`: the LoRA parameters, or with `transformer_config` (the transformer's diffusers config
    JSON, taken before any wrapper renamed its class) the full fine-tuned state dict, unsharded.
    `card`: the LoRA's model card (README.md beside its weights)."""
    from huggingface_hub import save_torch_state_dict

    final = checkpoint_dir(out_dir, iteration)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {name: value.detach().cpu().contiguous() for name, value in weights.items()}
    if transformer_config is None:
        export_lora(model, tmp, card)
        save_file(weights, tmp / TRAINABLE)
    else:
        (tmp / TRANSFORMER).mkdir()
        (tmp / TRANSFORMER / "config.json").write_text(transformer_config)
        save_torch_state_dict(weights, tmp / TRANSFORMER, filename_pattern=FULL_WEIGHTS, max_shard_size="10GB")
    torch.save({"iteration": iteration, "optimizer": optimizer, "torch_rng": torch.get_rng_state(),
                "config": config, **({"old_policy": old_policy} if old_policy is not None else {})}, tmp / TRAINING_STATE)
    write_checksums(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def load_weights(folder: Path, transformer: nn.Module, lora: bool) -> None:
    """Copy a checkpoint's trained weights into the (not yet wrapped) transformer, tensor by tensor."""
    files = [Path(folder) / TRAINABLE] if lora else sorted((Path(folder) / TRANSFORMER).glob("*.safetensors"))
    params = transformer.state_dict()  # shares storage with the parameters: copy_ writes them
    seen = set()
    with torch.no_grad():
        for path in files:
            with safe_open(path, "pt") as f:
                for name in f.keys():
                    if name not in params:
                        raise ValueError(f"checkpoint {folder} has weights the model lacks "
                                         f"(different LoRA config?): {name}")
                    params[name].copy_(f.get_tensor(name))
                    seen.add(name)
    if not lora and seen != set(params):
        raise ValueError(f"checkpoint {folder} lacks weights of the model: {sorted(set(params) - seen)[:3]}")


def load_training_state(folder: Path, model: nn.Module, optimizer, sharded: bool, old_policy=None) -> int:
    """Restore the optimizer and RNG state after accelerate prepared them; returns the iterations done.

    Every process reads the file memory-mapped (no copy per process); under FSDP each keeps its shard."""
    state = torch.load(Path(folder) / TRAINING_STATE, weights_only=False, mmap=True)
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, getattr(optimizer, "optimizer", optimizer), state["optimizer"],
                                 options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if old_policy is not None:  # DiffusionNFT's EMA old policy (engine/method/old_policy.py)
        old_policy.load(state["old_policy"])
    return int(state["iteration"])
