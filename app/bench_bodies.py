"""What the largest request a stranger may send costs the app's memory.

    python -m app.bench_bodies --concurrent 5

Starts `python app.py` (no worker) on a fresh data folder, reads its resident memory when idle, then
sends N concurrent launch requests whose bodies sit just under the body bound (G2RPO_MAX_BODY_MB,
prompts in the prompts field, no login: refused after they are parsed), then N bodies ten times over
the bound (refused with 413 before they are read). Prints the app's peak resident memory (VmHWM)
against idle after each round; nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor


def _memory_mb(pid: int, field: str) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def _reset_peak(pid: int) -> None:  # VmHWM back to the current RSS (Linux >= 4.0)
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def _body(size: int) -> bytes:
    """A launch request (the G²RPO preset's form) whose prompts field fills the body to `size` bytes."""
    from app import forms

    preset = next(iter(forms.PRESETS))
    values = dict(forms.preset_values(preset))
    empty = len(json.dumps({"data": [preset, "bench"] + [values[k] if k != "prompts" else "" for k in forms.KEYS]}))
    prompt = "a red circle on a black background\n"
    values["prompts"] = prompt * ((size - empty) // (len(json.dumps(prompt)) - 2))  # as JSON: "\\n" is 2 bytes
    return json.dumps({"data": [preset, "bench"] + [values[k] for k in forms.KEYS]}).encode()


def main(argv=None) -> int:
    import httpx

    from app.http_limits import max_body_bytes
    from app.server import free_port

    parser = argparse.ArgumentParser(prog="python -m app.bench_bodies", description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrent", type=int, default=5)
    args = parser.parse_args(argv)
    port, data = free_port(), tempfile.mkdtemp(prefix="g2rpo-bench-")
    env = {**os.environ, "G2RPO_DATA_DIR": data, "G2RPO_WORKER": "external", "G2RPO_PASSWORD": "bench"}
    app = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/gradio_api/call/submit"
    try:
        for _ in range(120):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        bound = max_body_bytes()
        post = lambda body: httpx.post(url, content=body, headers={"content-type": "application/json"},  # noqa: E731
                                       timeout=120).status_code
        post(_body(1000))  # warm: the first request imports what a handler needs
        time.sleep(1)
        idle = _memory_mb(app.pid, "VmRSS")
        print(f"app idle: {idle:.0f} MB resident; body bound {bound / 1e6:g} MB")
        for label, size in (("just under the bound", bound - 1000), ("ten times the bound", 10 * bound)):
            _reset_peak(app.pid)
            before = _memory_mb(app.pid, "VmRSS")
            body = _body(size) if size < bound else b"x" * size
            start = time.monotonic()
            with ThreadPoolExecutor(args.concurrent) as pool:
                codes = list(pool.map(post, [body] * args.concurrent))
            peak = _memory_mb(app.pid, "VmHWM")
            print(f"{args.concurrent} x {size / 1e6:.1f} MB ({label}): HTTP {sorted(set(codes))} in "
                  f"{time.monotonic() - start:.1f} s; resident {before:.0f} MB before, peak {peak:.0f} MB "
                  f"({peak - idle:+.0f} MB over idle)")
    finally:
        app.terminate()
        app.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
