"""Is the page still responsive while many browser sessions watch a training run?

    python -m app.bench --sessions 20

Starts the app and a worker on a fresh data folder, launches a G²RPO run on the built-in model, then
opens N headless Chromium pages on its Monitor tab (each polling every two seconds). Measured with
0 and with N pollers, in one run: the round trip of an API read (`/runs`) and of a UI action in
another page (switching the reward plot's x axis until the new figure is drawn), plus the CPU the
UI process used. Prints the figures; nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time


def _percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return f"median {1000 * statistics.median(samples):6.0f} ms   p95 {1000 * p95:6.0f} ms"


X_TITLE = ("() => { const l = document.querySelector('#reward-plot .js-plotly-plot').layout;"
           " return (l.xaxis2 || l.xaxis).title.text; }")  # the bottom panel's axis carries the title


def _ui_action(page) -> float:
    """Switch the x axis and wait until the reward plot shows the new axis title."""
    target = "wall time" if "iteration" == page.evaluate(X_TITLE) else "iteration"
    start = time.perf_counter()
    page.get_by_label(target, exact=True).check()
    expected = "wall time (s, cumulative)" if target == "wall time" else "iteration"
    page.wait_for_function(f"(t) => ({X_TITLE})() === t", arg=expected)
    return time.perf_counter() - start


def measure(client, page, rounds: int) -> tuple[list[float], list[float]]:
    api, ui = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        client.predict(api_name="/runs")
        api.append(time.perf_counter() - start)
        ui.append(_ui_action(page))
        time.sleep(0.3)
    return api, ui


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    data = tempfile.mkdtemp(prefix="g2rpo-bench-")
    os.environ["G2RPO_DATA_DIR"] = data
    os.environ.pop("G2RPO_QUEUE_URL", None)
    os.environ.pop("G2RPO_DATABASE_URL", None)

    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    from app.server import free_port, serve
    from jobs import api
    from jobs.testing import WorkerProcess

    worker = WorkerProcess({"G2RPO_DATA_DIR": data}, os.path.join(data, "worker.log")).start()
    port = free_port()
    demo = serve("127.0.0.1", port, block=False, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    run_id = api.submit("configs/g2rpo.yaml", ["train.iterations=100000", "train.sample_every=10"], name="bench")
    while api.get_run(run_id)["last_iteration"] is None:
        time.sleep(0.5)
    client = Client(url, verbose=False)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])

            def monitor_page():
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url)
                page.get_by_role("tab", name="Monitor").click()
                page.locator("#monitor-run input").click()
                page.get_by_role("option").first.click()
                page.wait_for_function("() => document.querySelector('#reward-plot .js-plotly-plot')?.data?.length > 0",
                                       timeout=60_000)
                return page

            probe = monitor_page()
            cpu0, t0 = time.process_time(), time.perf_counter()
            alone = measure(client, probe, args.rounds)
            cpu_alone = (time.process_time() - cpu0) / (time.perf_counter() - t0)
            pollers = [monitor_page() for _ in range(args.sessions)]
            time.sleep(5)
            done_before = api.get_run(run_id)["last_iteration"]
            cpu0, t0 = time.process_time(), time.perf_counter()
            crowded = measure(client, probe, args.rounds)
            cpu_crowded = (time.process_time() - cpu0) / (time.perf_counter() - t0)
            trained = api.get_run(run_id)["last_iteration"] - done_before
            live = sum(p.evaluate("() => document.querySelector('#reward-plot .js-plotly-plot').data[0].x.length")
                       for p in pollers) / len(pollers)
            print(f"UI process, one run training on the built-in model ({os.cpu_count()} CPUs), {args.rounds} rounds each:")
            print(f"  API /runs      alone: {_percentiles(alone[0])}   with {args.sessions} pollers: {_percentiles(crowded[0])}")
            print(f"  UI x-axis flip alone: {_percentiles(alone[1])}   with {args.sessions} pollers: {_percentiles(crowded[1])}")
            print(f"  UI process CPU alone: {100 * cpu_alone:.0f}%   with {args.sessions} pollers: {100 * cpu_crowded:.0f}%")
            print(f"  iterations trained while crowded: {trained}; the pollers' curves hold {live:.0f} points on average "
                  f"(the run has {api.get_run(run_id)['last_iteration'] + 1})")
            browser.close()
    finally:
        client.close()
        api.cancel(run_id)
        demo.close()
        worker.stop()
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
