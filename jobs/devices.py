"""What a worker trains on, told without importing torch (the worker's main process never does):
the GPUs nvidia-smi lists, narrowed to CUDA_VISIBLE_DEVICES, or the CPU. The heartbeat carries it,
so the Launch tab can say that a FLUX or SD3.5 run would land on a machine with no GPU."""
from __future__ import annotations

import os
import shutil
import subprocess


def gpus() -> list[tuple[str, int]]:
    """[(name, memory in bytes)] of the GPUs this process may use; [] when there are none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return []
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.strip().splitlines():
        index, name, mib = (part.strip() for part in line.split(",", 2))
        found.append((index, name, int(float(mib)) * 2 ** 20))
    if visible is not None:
        wanted = [v.strip() for v in visible.split(",")]
        found = [g for g in found if g[0] in wanted]
    return [(name, memory) for _, name, memory in found]


def describe() -> tuple[str, int | None]:
    """("cpu", None) or ("NVIDIA H100 80GB HBM3 x1", memory of the smallest GPU in bytes)."""
    found = gpus()
    if not found:
        return "cpu", None
    names = sorted({name for name, _ in found})
    return f"{' + '.join(names)} x{len(found)}", min(memory for _, memory in found)
