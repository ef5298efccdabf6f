"""Export a run for use outside the tool: a zip (or a folder) with its config, its metrics as CSV
and JSON Lines (rebuilt from the database), its evaluations, the votes of the blind A/B tests its
checkpoints took part in (ab_votes.csv), the newest samples, and the LoRA of its last checkpoint
in the diffusers format (`pipe.load_lora_weights(folder)`).

The LoRA's folder `lora/` is what a Hub repository holds (jobs/hub.py pushes it): the weights, the
model card README.md (engine/training/model_card.py: base model, tags, settings, the training and held-out
scores from the database) and the card's sample images in `lora/images/`."""
from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import yaml

from engine.training.model_card import CARD, CardFacts, lora_card
from jobs import queries, runs, settings, votes

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # engine.training.checkpoint.LORA_WEIGHTS (no torch import here)
LORA = "lora"


def metrics_csv(run_id: int) -> str:
    rows = queries.latest_metrics(run_id)
    names = list(rows[0]["rewards"]) if rows else []
    columns = [c for c in queries.CURVES if c != "rewards"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns + [f"{n}_{s}" for n in names for s in ("mean", "std")])
    for row in rows:
        writer.writerow([row[c] for c in columns] + [row["rewards"][n][s] for n in names for s in ("mean", "std")])
    return out.getvalue()


def contents(run_id: int, repo_id: str | None = None) -> dict[str, bytes | Path]:
    """Archive name -> bytes, or a file to copy. `repo_id`: the Hub repository the LoRA goes to (its card says so)."""
    run = runs.get(run_id)
    folder = settings.run_dir(run_id)
    records = queries.records(run_id)
    files: dict[str, bytes | Path] = {
        "run.json": json.dumps(run.model_dump(exclude={"config"}), indent=1, default=str).encode(),
        "config.yaml": yaml.safe_dump(run.config, sort_keys=False).encode(),
        "metrics.csv": metrics_csv(run_id).encode(),
        "records.jsonl": "".join(json.dumps(r) + "\n" for r in records).encode(),
        "evaluations.json": json.dumps(queries.evaluations(run_id), indent=1, default=str).encode(),
    }
    tests = votes.tests_of_run(run_id)
    if tests:  # the blind A/B tests in which a checkpoint of this run was one of the two models
        files["ab_votes.csv"] = votes.votes_csv(tests).encode()
    samples = queries.samples(run_id)
    newest = max((s["trained"] for s in samples), default=None)
    for s in samples:
        if s["trained"] == newest and (folder / s["path"]).exists():
            files[f"samples/{Path(s['path']).name}"] = folder / s["path"]
    if run.last_checkpoint:
        checkpoint = folder / run.last_checkpoint
        if (checkpoint / LORA_WEIGHTS).exists():
            files[f"{LORA}/{LORA_WEIGHTS}"] = checkpoint / LORA_WEIGHTS
            files.update(lora_files(run_id, run.config, int(checkpoint.name.removeprefix("iter_")), samples, records,
                                    repo_id))
        for path in sorted((checkpoint / "transformer").glob("*")):  # full fine-tuning
            files[f"transformer/{path.name}"] = path
    return files


def lora_files(run_id: int, config: dict, trained: int, samples: list[dict], records: list[dict],
               repo_id: str | None = None) -> dict[str, bytes | Path]:
    """The LoRA folder's card and images: the newest samples of the checkpoint's policy (or an
    earlier one), the training rewards of the iterations before the checkpoint."""
    folder = settings.run_dir(run_id)
    shown = [s for s in samples if s["trained"] <= trained and (folder / s["path"]).exists()]
    newest = max((s["trained"] for s in shown), default=None)
    images = {f"images/{Path(s['path']).name}": s for s in shown if s["trained"] == newest}
    facts = CardFacts.from_records(r for r in records if r["iteration"] < trained)
    facts.evaluations = queries.evaluations(run_id)  # the database's: the trainer's and any added later
    card = lora_card(config, facts, trained, [(name, s["prompt"]) for name, s in images.items()], repo_id)
    return {f"{LORA}/{CARD}": str(card).encode(), **{f"{LORA}/{name}": folder / s["path"] for name, s in images.items()}}


def export_run(run_id: int, out: str | Path | None = None, repo_id: str | None = None) -> Path:
    """Write `out` (default data/exports/run-ID.zip); a path without .zip is written as a folder.
    `repo_id`: the Hub repository the LoRA is pushed to, which its card names."""
    out = Path(out) if out else settings.data_dir() / "exports" / f"run-{run_id}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    files = contents(run_id, repo_id)
    if out.suffix == ".zip":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in files.items():
                z.write(data, name) if isinstance(data, Path) else z.writestr(name, data)
    else:
        for name, data in files.items():
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data.read_bytes() if isinstance(data, Path) else data)
    return out
