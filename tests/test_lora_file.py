"""A LoRA file is a function of its tensors and settings: exported twice, under two hash seeds (which
order Python's sets, and peft keeps target_modules as one), it is the same bytes, so its checksum
can be published and checked (issue 28)."""
import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

EXPORT = """
import sys, torch
from peft import LoraConfig
from engine.config import load_config
from engine.models import build_model
from engine.training.checkpoint import export_lora
torch.set_num_threads(1)
cfg = load_config("configs/g2rpo.yaml", ["model.name=tiny-flux"])
model = build_model(cfg.model)
model.transformer.requires_grad_(False)
torch.manual_seed(0)  # gaussian A and B: no tensor is all zeros, so each one's bytes count
model.transformer.add_adapter(LoraConfig(r=4, lora_alpha=8, init_lora_weights="gaussian",
                                         target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
for name, p in model.transformer.named_parameters():
    if "lora_B" in name:
        torch.nn.init.normal_(p)
export_lora(model, sys.argv[1])
"""


def export_under(hash_seed: str, folder: Path) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", EXPORT, str(folder)], check=True, env=env, cwd=Path(__file__).parents[1],
                   capture_output=True, text=True, timeout=300)
    return hashlib.sha256((folder / "pytorch_lora_weights.safetensors").read_bytes()).hexdigest()


def test_a_lora_exported_under_two_hash_seeds_is_the_same_file(tmp_path):
    assert export_under("1", tmp_path / "one") == export_under("2", tmp_path / "two")


def test_sorting_the_metadata_keeps_the_tensors_and_the_header_length(tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from engine.training.checkpoint import sort_metadata

    path = tmp_path / "w.safetensors"
    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(4, dtype=torch.float16)}
    save_file(tensors, path, metadata={"zeta": "ü 1", "format": "pt", "alpha": "{\"x\": [1, 2]}"})
    size = path.stat().st_size
    sort_metadata(path)
    raw = path.read_bytes()
    header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])  # safe_open's metadata() is a HashMap
    assert list(header["__metadata__"]) == ["alpha", "format", "zeta"]
    with safe_open(path, "pt") as f:
        assert f.metadata() == {"zeta": "ü 1", "format": "pt", "alpha": "{\"x\": [1, 2]}"}
    assert path.stat().st_size == size
    assert all(torch.equal(load_file(path)[k], v) for k, v in tensors.items())
