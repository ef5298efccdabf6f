"""Train from the command line:

    python -m engine.train --config configs/g2rpo.yaml --out runs/my-run [--set key=value ...]
    python -m engine.train --out runs/my-run --resume          # continue from the last checkpoint
    accelerate launch --config_file configs/accelerate/ddp.yaml -m engine.train --config ... --out ...

Under `accelerate launch` each process trains train.prompts_per_iteration prompts of the global batch;
the result is that of one process with prompts_per_iteration x num_processes prompts.

The config is validated before any work starts: a bad one prints every problem, exits with code 2
and writes nothing; so does --resume when no checkpoint of the run is intact. A run that goes
non-finite (NaN or inf loss, reward, gradient or weight) stops with one line naming the iteration
and the last good checkpoint, and exits with code 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from engine.config import ConfigError, load_config
from engine.training.errors import CheckpointError, NonFiniteError

CONFIG_FILE = "config.yaml"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m engine.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="YAML config (default: the saved one with --resume, else built-in defaults)")
    parser.add_argument("--out", required=True, help="run folder: records, samples, checkpoints")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set algorithm.group_size=8 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    saved = out / CONFIG_FILE
    config_path = args.config or (saved if args.resume and saved.exists() else None)
    try:
        cfg = load_config(config_path, args.overrides)
        if not args.resume and (out / "records.jsonl").exists():
            raise ConfigError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
        if args.resume and not saved.exists():
            raise ConfigError(f"--resume: {out} holds no run to resume (no {CONFIG_FILE})")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from engine.training.trainer import Trainer  # heavy imports only once the config is known to be good

    # Under `accelerate launch` every process runs this. The Trainer's Accelerator is the first
    # accelerate state made: one made earlier would miss the launcher's CPU setting.
    try:
        trainer = Trainer(cfg, out, resume=args.resume)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if trainer.is_main:
        out.mkdir(parents=True, exist_ok=True)
        saved.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    try:
        trainer.run(progress=not args.no_progress)
    except NonFiniteError as err:
        print(f"\nerror: {err}", file=sys.stderr)
        return 1
    if trainer.is_main:
        print(f"done: {cfg.train.iterations} iterations; records in {out / 'records.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
