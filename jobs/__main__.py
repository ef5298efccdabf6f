"""Jobs from the command line (the same API the UI uses):

    python -m jobs submit configs/g2rpo.yaml [--set train.iterations=20] [--name NAME] [--wait]
    python -m jobs list [--status running]
    python -m jobs status ID [--wait]
    python -m jobs cancel ID
    python -m jobs resume ID [--set train.iterations=200]
    python -m jobs export ID [--out run.zip | --out folder]
    python -m jobs push ID USER/REPO [--private]     # the LoRA, its model card and samples to the Hub
    python -m jobs delete ID

Training happens in a worker: `python -m jobs.worker`. Invalid input (and a data folder or
database that cannot be used, a push without a token) exits with code 2 and one line on stderr, an
unreachable queue or Hub with 1.
"""
from __future__ import annotations

import argparse
import sys

from jobs import api, settings


def _progress(run: dict) -> str:
    done = 0 if run["last_iteration"] is None else run["last_iteration"] + 1
    return f"{done}/{run['iterations']}"


def _num(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _show(run: dict) -> None:
    print(f"run {run['id']} {run['name']!r}: {run['status']} ({run['algorithm']} on {run['model']}, "
          f"{_progress(run)} iterations)")
    for key in ("created_at", "started_at", "finished_at", "worker_host", "last_checkpoint", "folder"):
        if run.get(key) is not None:
            print(f"  {key}: {run[key]}")
    metrics = api.latest_metrics(run["id"], since_iteration=(run["last_iteration"] or 0) - 1)
    if metrics:
        m = metrics[-1]
        print(f"  iteration {m['iteration']}: reward {_num(m['reward'], '.4f')}, loss {_num(m['loss'], '.3g')}, "
              f"{m['seconds']:.2f} s/iteration")
    if run.get("error"):
        print(f"  error: {run['error']}")


def _wait(run_id: int) -> int:
    status = api.wait(run_id)
    print(f"run {run_id}: {status}")
    return 0 if status == "completed" else 1


def main(argv=None) -> int:
    settings.use_space_storage()  # HF_HOME on a Space's storage, before a push imports huggingface_hub
    parser = argparse.ArgumentParser(prog="python -m jobs", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("submit", help="validate a config and queue a run")
    p.add_argument("config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--name", default="")
    p.add_argument("--wait", action="store_true", help="block until the run ends")
    p = sub.add_parser("list", help="runs, newest first")
    p.add_argument("--status")
    for name, text in (("status", "a run's state and latest metrics"), ("cancel", "stop a run"),
                       ("resume", "continue a stopped run from its last checkpoint"),
                       ("export", "zip of config, metrics and LoRA"), ("delete", "delete a finished run")):
        p = sub.add_parser(name, help=text)
        p.add_argument("id", type=int)
        if name == "status":
            p.add_argument("--wait", action="store_true", help="block until the run ends")
        if name == "resume":
            p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
        if name == "export":
            p.add_argument("--out", help="a .zip file or a folder (default: DATA_DIR/exports/run-ID.zip)")
    p = sub.add_parser("push", help="push a run's LoRA with its model card to a Hugging Face model repository")
    p.add_argument("id", type=int)
    p.add_argument("repo", help="the model repository, user/name (created if missing); the token is HF_TOKEN's")
    p.add_argument("--private", action="store_true", help="create the repository private")
    args = parser.parse_args(argv)

    try:
        if args.command == "submit":
            run_id = api.submit(args.config, args.overrides, args.name)
            print(f"queued run {run_id}; a worker (python -m jobs.worker) will train it")
            return _wait(run_id) if args.wait else 0
        if args.command == "list":
            rows = api.list_runs(args.status)
            print(f"{'id':>5}  {'status':<11} {'algorithm':<10} {'model':<10} {'progress':>9}  "
                  f"{'created (UTC)':<19}  name")
            for r in rows:
                print(f"{r['id']:>5}  {r['status']:<11} {r['algorithm']:<10} {r['model']:<10} {_progress(r):>9}  "
                      f"{r['created_at']:%Y-%m-%d %H:%M:%S}  {r['name']}")
            return 0
        if args.command == "status":
            _show(api.get_run(args.id))
            return _wait(args.id) if args.wait else 0
        if args.command == "cancel":
            state = api.cancel(args.id)
            note = " (its worker stops it within seconds)" if state == "cancelling" else ""
            print(f"run {args.id}: {state}{note}")
        elif args.command == "resume":
            api.resume(args.id, args.overrides)
            print(f"run {args.id}: queued again; it continues from its last checkpoint")
        elif args.command == "export":
            print(f"run {args.id} exported to {api.export(args.id, args.out)}")
        elif args.command == "push":
            print(f"run {args.id} pushed: {api.push(args.id, args.repo, args.private)}")
        elif args.command == "delete":
            api.delete(args.id)
            print(f"run {args.id} deleted")
        return 0
    except (api.ConfigError, api.JobError, api.StorageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (api.QueueError, api.HubError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
