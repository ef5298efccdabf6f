"""Each checkpoint's checksums.json: the size and SHA-256 of every file, written when it is saved and
checked before a resume. Torch-free, so the UI can say what a resume will redo."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

CHECKSUMS = "checksums.json"


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_checksums(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUMS)
    sums = {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in files}
    (folder / CHECKSUMS).write_text(json.dumps(sums, indent=1))


def mismatch(folder: Path) -> str | None:
    """Why `folder`'s files differ from its checksums.json, or None when they match. A folder
    without the file (saved before checksums) is not judged here."""
    listed = Path(folder) / CHECKSUMS
    if not listed.exists():
        return None
    try:
        sums = json.loads(listed.read_text())
    except (OSError, ValueError):
        return f"{CHECKSUMS} unreadable"
    for name, expected in sums.items():
        path = Path(folder) / name
        if not path.exists():
            return f"{name} missing"
        if path.stat().st_size != expected["bytes"]:
            return f"{name} has {path.stat().st_size:,} bytes, {expected['bytes']:,} were written"
        if sha256_file(path) != expected["sha256"]:
            return f"{name} does not match its checksum"
    return None
