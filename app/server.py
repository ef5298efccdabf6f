"""Start everything with one command: the UI, and the worker it needs unless one runs elsewhere.

    python app.py                        # UI on :7860 plus an embedded worker (one job at a time)
    G2RPO_WORKER=external python app.py  # UI only: workers run `python -m jobs.worker` themselves

The worker is its own process (Huey's consumer needs the main thread, and training must never
share the UI's process); it is started again when it dies, and dies with the app; runs it was
training are marked interrupted, resumable from their last checkpoint.

uvicorn would take the client's address from X-Forwarded-For when the connection comes from
loopback (its default FORWARDED_ALLOW_IPS): a visitor behind any local proxy, or on the machine,
could then pick the address the login rate limit counts. The app trusts no forwarded header unless
the operator declares proxies (G2RPO_TRUSTED_PROXIES, app/auth.py; or FORWARDED_ALLOW_IPS for uvicorn).
"""
from __future__ import annotations

import logging
import os
import socket
import sys

log = logging.getLogger("app")


def start_worker():
    """The embedded worker, restarted when it dies (app/embedded_worker.py); None with G2RPO_WORKER=external."""
    if os.environ.get("G2RPO_WORKER", "embedded") == "external":
        log.info("G2RPO_WORKER=external: not starting a worker; run `python -m jobs.worker`")
        return None
    from app.embedded_worker import EmbeddedWorker

    return EmbeddedWorker().start()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(host: str, port: int, block: bool = True, quiet: bool = False):
    """Build the UI and serve it; with block=False return the running Blocks (tests, benchmarks)."""
    from app.ui import build_demo, launch_options

    os.environ.setdefault("FORWARDED_ALLOW_IPS", "")  # read by uvicorn: trust no proxy unless declared
    demo = build_demo()
    demo.queue(default_concurrency_limit=8)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=quiet, **launch_options())
    return demo


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python app.py", description="The G²RPO web UI (and its worker).")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from jobs import settings

    if settings.use_space_storage():  # before gradio and the worker import huggingface_hub
        log.info("Space storage: data in %s, Hugging Face cache in %s", settings.data_dir(), os.environ["HF_HOME"])
    from jobs import db
    from jobs.settings import StorageError

    try:
        db.get_engine()  # migrate once here, before the worker and the UI race to
    except StorageError as err:  # an unusable data folder or database: one line, exit code 2
        print(f"error: {err}", file=sys.stderr)
        return 2
    demo = serve(args.host, args.port, block=False)
    start_worker()  # once the page is served: the worker's torch import would otherwise delay it
    demo.block_thread()
    return 0
