"""The app in a real headless Chromium (Debian's, driven by Playwright): launch a run on the
built-in model and watch it live, refuse bad input, cancel, compare; and, on stored runs (nothing
trained), the cost shown before launch, smoothing, the run label following its status, Compare's
message, delete's confirmation, resume's redo count, and every tab in the light and the dark theme.
Screenshots go to $G2RPO_SCREENSHOTS (default test-artifacts/screenshots)."""
import os
import shutil
import time
from pathlib import Path

import pytest

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium: `make test` installs it (apt-get install chromium)")
SHOTS = Path(os.environ.get("G2RPO_SCREENSHOTS", "test-artifacts/screenshots"))


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                          "--disable-background-networking"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_server):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(app_server["url"])
    page.wait_for_selector("#launch-button")
    yield page
    page.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def fill(page, key: str, value) -> None:
    """Type into the Launch form's field `key` (app.forms.FIELDS) and leave it."""
    field = page.locator(f"#field-{key} input, #field-{key} textarea").first
    if not field.is_visible():  # an advanced setting: open the accordion
        page.get_by_text("More settings").click()
    for _ in range(5):  # on a loaded machine a late page update can put the old value back: type again
        field.fill(str(value))
        field.blur()
        page.wait_for_timeout(300)
        if field.input_value() == str(value):
            return
    raise AssertionError(f"the field {key} did not keep {str(value)[:40]!r}")


def launch(page, iterations: int, name: str) -> int:
    """Fill the Launch form with a small G²RPO run on the built-in model; returns the run id."""
    for key, value in (("name", name), ("branch_steps", "0, 1, 2, 3"), ("granularities", "1, 2"),
                       ("group_size", 4), ("iterations", iterations)):
        fill(page, key, value)
    for key, value in (("steps", 8), ("eval_every", 5), ("sample_every", 5), ("checkpoint_every", 10),
                       ("prompts_per_iteration", 1)):
        fill(page, key, value)
    page.click("#launch-button")
    message = page.locator("#launch-message")
    message.get_by_text("Queued run").wait_for(state="attached")  # then Monitor opens, hiding it
    return int(message.text_content().split("#")[1].split(":")[0])


MONITOR_VIEWS = {"curves": "Reward and held-out", "attribution": "Where the reward comes from", "samples": "Samples",
                 "diagnostics": "Diagnostics"}


def monitor_view(page, view: str) -> None:
    """Open one of the Monitor's views (its sub-tabs: app/monitor_tab.py)."""
    page.get_by_role("tab", name=MONITOR_VIEWS[view], exact=True).click()


def plot_points(page, plot: str, trace: str | None = None) -> int:
    """How many x values a trace (by name; default the first) of a Plotly figure has (0 before it is drawn)."""
    return page.evaluate("""([id, name]) => { const p = document.querySelector(`#${id} .js-plotly-plot`);
        const t = p && p.data ? p.data.find((t) => name === null || t.name === name) : null;
        return t ? (t.x || []).length : 0; }""", [plot, trace])


def plot_state(page, plot: str) -> str:
    """What a plot shows, for a failure's message: Gradio's empty box, or Plotly's traces."""
    return page.evaluate("""(id) => { const host = document.querySelector(`#${id}`);
        if (!host) return 'not on the page';
        if (host.querySelector('[aria-label="Empty value"]')) return 'the empty box (no figure, or a failed one)';
        const p = host.querySelector('.js-plotly-plot');
        return p && p.data ? `a figure with ${p.data.length} trace(s)` : 'a box without a figure'; }""", plot)


def wait_until(predicate, timeout: float, what: str, state=None):
    """Poll `predicate` until it is true; on timeout, say what was seen instead (`state()`)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}" + (f"; it shows {state()}" if state else ""))
        time.sleep(0.5)
    return value


def test_launch_and_watch_the_reward_and_the_heatmap_grow_then_compare(page):
    run_id = launch(page, iterations=40, name="browser")
    status = page.locator("#monitor-status")  # launching opens Monitor on the new run
    status.get_by_text(f"Run #{run_id}").wait_for()
    first = wait_until(lambda: plot_points(page, "reward-plot", "adherence") >= 2, 180, "the first iterations to be drawn")
    rewards = plot_points(page, "reward-plot", "adherence")
    shot(page, "monitor-early")
    wait_until(lambda: plot_points(page, "reward-plot", "adherence") > rewards + 3, 120, "the reward curve to grow")
    monitor_view(page, "attribution")
    heat = wait_until(lambda: plot_points(page, "step-heatmap"), 60, "the heatmap")
    wait_until(lambda: plot_points(page, "step-heatmap") > heat, 60, "the heatmap to grow")
    assert first
    status.get_by_text("completed").wait_for(timeout=240_000)
    page.wait_for_timeout(2500)  # the last tick
    monitor_view(page, "curves")
    wait_until(lambda: plot_points(page, "reward-plot", "adherence") == 40, 20, "all 40 iterations drawn")
    monitor_view(page, "samples")
    page.locator("#samples-gallery img").first.wait_for()
    shot(page, "monitor-completed")

    page.get_by_role("tab", name="Compare").click()
    prompt = page.locator("#compare-prompt textarea")
    prompt.fill("a red circle on a black background")
    page.click("#compare-button")
    page.locator("#compare-images img").first.wait_for(timeout=120_000)
    wait_until(lambda: "preference" in page.locator("#compare-scores").inner_text(), 30, "the scores")
    assert page.locator("#compare-images img").count() == 2  # base and tuned, captioned under each
    shot(page, "compare")


BAD = [("prompts", "a red zebra on a black background", "zebra"),
       ("prompts", "r" * 10_000, "10,000 characters"),
       ("granularities", "", "Lambda must not be empty"),
       ("learning_rate", -1, "must be > 0"),
       ("sample_prompts", "", "at least one prompt is needed")]


def test_bad_input_gets_a_message_at_its_field_and_queues_nothing(page, app_server):
    from jobs import api

    before = api.list_runs()
    try:
        for i, (key, value, message) in enumerate(BAD):
            page.reload()
            page.wait_for_selector("#launch-button")
            fill(page, key, value)
            page.click("#launch-button")
            page.locator(f"#field-{key}").get_by_text(message).wait_for(timeout=15_000)  # at the field
            assert page.locator("#launch-message").inner_text().strip() == ""
            shot(page, f"bad-input-{i}-{key}")
        assert api.list_runs() == before
    finally:  # a run queued by mistake must not keep the shared worker busy for the tests after this one
        known = {r["id"] for r in before}
        for run in api.list_runs():
            if run["id"] not in known and run["status"] in ("queued", "running"):
                api.cancel(run["id"])


def test_cancel_a_running_run_from_the_runs_table(page):
    run_id = launch(page, iterations=2000, name="cancel me")
    page.get_by_role("tab", name="Runs").click()
    table = page.locator("#runs-table")
    wait_until(lambda: "running" in table.inner_text(), 120, "the run to start")
    page.locator("#selected-run textarea").fill(str(run_id))
    page.click("#cancel-button")
    page.locator("#runs-message").get_by_text(f"Run #{run_id}").wait_for()
    wait_until(lambda: "cancelled" in table.inner_text(), 30, "the table to show the run cancelled")
    shot(page, "runs-cancelled")


# --- a monitor a researcher can read (issue 15), on stored runs: nothing is trained -------------------

def stored(iterations_done: int, status: str, checkpoint_at=()) -> int:
    from tests.test_app_runs import stored_run

    return stored_run(iterations_done, checkpoint_at=checkpoint_at, status=status)


def select_run(page, run_id: int) -> None:
    """Select a run in the Runs tab (which also opens it in Monitor and Compare)."""
    page.get_by_role("tab", name="Runs").click()
    field = page.locator("#selected-run textarea")
    field.fill(str(run_id))
    field.press("Enter")
    page.locator("#selected-info").get_by_text(f"Run #{run_id}").wait_for()


def test_the_cost_is_shown_before_launch_and_baseline_only_fields_are_greyed(page):
    cost = page.locator("#launch-cost")
    cost.get_by_text("model evaluations per iteration").wait_for()
    fill(page, "iterations", 5_000)  # long, not refused
    cost.get_by_text("⚠️ About").wait_for(timeout=15_000)
    fill(page, "learning_rate", -1)  # a form with an error has no cost
    cost.get_by_text("not shown while the form has errors").wait_for(timeout=15_000)
    fill(page, "learning_rate", 0.0005)
    box = lambda key: page.locator(f"#field-{key} input, #field-{key} textarea").first  # noqa: E731
    assert box("branch_steps").is_enabled()
    box("algorithm").click()
    page.get_by_role("option", name="diffusionnft").click()
    wait_until(lambda: not box("branch_steps").is_enabled(), 15, "K to be greyed out")
    assert not box("eta").is_enabled() and box("group_size").is_enabled()
    shot(page, "launch-cost-diffusionnft")


def test_the_monitor_label_follows_the_status_and_smoothing_redraws(page):
    from jobs import runs
    from jobs.models import utcnow

    run_id = stored(30, "running")
    select_run(page, run_id)
    page.get_by_role("tab", name="Monitor").click()
    label = page.locator("#monitor-run input")
    wait_until(lambda: label.input_value().endswith("· running"), 20, "the label to say running")
    wait_until(lambda: plot_points(page, "reward-plot", "reward0") == 30, 20, "the reward curve")
    ys = lambda: page.evaluate("""() => { const p = document.querySelector('#reward-plot .js-plotly-plot');
        return p.data.find((t) => t.name === 'reward0').y; }""")  # noqa: E731
    smoothed = ys()
    slider = page.locator("#smoothing input[type=number]")
    slider.fill("0")
    slider.press("Enter")
    wait_until(lambda: ys() != smoothed, 20, "the curve to be redrawn unsmoothed")
    runs._transition(run_id, ("running",), status="completed", heartbeat_at=utcnow())
    wait_until(lambda: label.input_value().endswith("· completed"), 20, "the label to say completed")


def test_compare_with_an_unknown_word_shows_the_message(page):
    run_id = stored(2, "completed", checkpoint_at=(2,))
    select_run(page, run_id)
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-prompt textarea").fill("a red zebra on a black background")
    page.click("#compare-button")
    # refused before the sampler, but queued behind any sampler work of earlier tests (one at a time)
    page.locator("#compare-message").get_by_text("zebra").wait_for(timeout=120_000)


def test_delete_asks_first_and_resume_states_the_iterations_to_redo(page):
    from jobs import api

    run_id = stored(7, "cancelled")
    select_run(page, run_id)
    info = page.locator("#selected-info")
    info.get_by_text("7 of the 7 iterations done (1–7) will be redone").wait_for()
    assert page.locator("#resume-button").is_enabled() and not page.locator("#cancel-button").is_enabled()
    page.click("#delete-button")
    page.locator("#delete-confirm-row").get_by_text("cannot be undone").wait_for()
    page.click("#delete-keep")
    page.locator("#runs-message").get_by_text("Kept.").wait_for()
    assert api.get_run(run_id)["status"] == "cancelled"  # still there
    page.click("#delete-button")
    page.click("#delete-confirm")
    page.locator("#runs-message").get_by_text(f"Run #{run_id} deleted.").wait_for()
    assert "Kept." not in page.locator("#runs-message").inner_text()  # the new message replaced the old


TABS = ("Launch", "Runs", "Monitor", "Compare", "Overlay")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_tab_in_both_themes_and_plots_follow_the_theme(browser, app_server, theme):
    run_id = stored(30, "completed", checkpoint_at=(10, 20, 30))
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(f"{app_server['url']}?__theme={theme}")
    page.wait_for_selector("#launch-button")
    assert page.evaluate("document.body.classList.contains('dark')") == (theme == "dark")
    select_run(page, run_id)
    for tab in TABS:
        page.get_by_role("tab", name=tab).click()
        if tab == "Monitor":
            wait_until(lambda: plot_points(page, "reward-plot", "reward0") == 30, 20, "the reward curve")
            monitor_view(page, "attribution")
            wait_until(lambda: plot_points(page, "step-heatmap"), 60, "the heatmap",
                       lambda: plot_state(page, "step-heatmap"))
            monitor_view(page, "curves")
            colours = page.evaluate("""() => {
                const plot = document.querySelector('#reward-plot .js-plotly-plot');
                const text = plot.querySelector('.xtick text, .ytick text');
                return {text: getComputedStyle(text).fill,
                        paper: getComputedStyle(plot.querySelector('.main-svg')).backgroundColor}; }""")
            assert colours["paper"] in ("rgba(0, 0, 0, 0)", "transparent")  # the page's background shows
            red, green, blue = (int(v) for v in colours["text"].split("(")[1].split(")")[0].split(",")[:3])
            light_text = (red + green + blue) / 3 > 128
            assert light_text == (theme == "dark"), colours  # readable on the page's own background
        page.wait_for_timeout(500)
        shot(page, f"{tab.lower()}-{theme}")
    page.close()


def trace_names(page, plot: str) -> list[str]:
    return page.evaluate("""(id) => { const p = document.querySelector(`#${id} .js-plotly-plot`);
        return p && p.data ? p.data.map((t) => t.name) : []; }""", plot)


def test_the_log_the_sample_grid_and_the_attribution_window_on_a_stored_run(page):
    from jobs import runs, settings
    from jobs.models import utcnow
    from tests.test_app_samples import stored_with_samples

    run_id = stored_with_samples()
    runs._transition(run_id, ("queued",), status="completed", heartbeat_at=utcnow())
    (settings.run_dir(run_id) / "log.txt").write_text(f"run {run_id}: saved {settings.run_dir(run_id)}/samples\n")
    select_run(page, run_id)
    page.get_by_text("Log of the selected run").click()
    log = page.locator("#run-log textarea")
    wait_until(lambda: f"run {run_id}: saved <run>/samples" in log.input_value(), 20, "the redacted log")
    shot(page, "runs-log")

    page.get_by_role("tab", name="Monitor").click()
    monitor_view(page, "samples")
    grid = page.locator("#samples-grid")
    grid.get_by_text("after 4 iterations").wait_for(timeout=20_000)
    assert grid.locator("img").count() == 4 and "(+0.200)" in grid.inner_text()
    box = page.locator("#samples-iteration input[type=number]")
    box.fill("2")
    box.press("Enter")
    grid.get_by_text("after 2 iterations").wait_for(timeout=20_000)
    assert not page.locator("#samples-follow input").is_checked()  # a chosen iteration stays chosen
    shot(page, "monitor-samples-grid")
    monitor_view(page, "attribution")
    summary = page.locator("#step-summary")
    summary.get_by_text("iterations 0–3, 4 groups").wait_for(timeout=20_000)  # the default window holds all 4
    wait_until(lambda: "by rank" in page.locator("#member-heatmap").inner_text(), 20, "the averaged member view")
    shot(page, "monitor-attribution-window")
    window = page.locator("#attribution-window input[type=number]")
    window.fill("1")
    window.press("Enter")
    summary.get_by_text("(iteration 3, 1 group:").wait_for(timeout=20_000)


def test_seed_envelopes_in_the_overlay(page):
    from jobs import runs
    from jobs.models import utcnow
    from jobs.sink import RunSink
    from jobs.testing import fake_config, fake_record

    ids = []
    for seed in (0, 1, 2):
        config = fake_config(iterations=30)
        config["train"]["seed"] = seed
        run_id = runs.create(config, name=f"g2rpo seed {seed}")
        sink = RunSink(run_id)
        sink.begin(0)
        for it in range(30):
            sink.write(fake_record(it + 100 * seed, k=2, lambdas=2, group=3) | {"iteration": it})
        runs._transition(run_id, ("queued",), status="completed", heartbeat_at=utcnow())
        ids.append(run_id)
    page.get_by_role("tab", name="Overlay").click()
    page.get_by_role("button", name="↻ runs").last.click()
    for seed, run_id in enumerate(ids):
        page.locator("#overlay-runs input").click()
        page.get_by_role("option", name=f"#{run_id} g2rpo seed {seed}").click()
    page.locator("#overlay-runs input").press("Escape")  # close the list, which would cover the button
    page.click("#overlay-button")
    wait_until(lambda: len(trace_names(page, "overlay-plot")) == 3, 20, "one line per run")
    page.locator("#overlay-by-seed input").check()
    group = f"#{ids[0]}, #{ids[1]}, #{ids[2]} g2rpo · 3 seeds"
    wait_until(lambda: trace_names(page, "overlay-plot")[:2] == [f"{group} (min–max)", f"{group} (mean)"], 20,
               "the seeds drawn as one envelope")
    page.get_by_role("cell", name="seeds of one config").wait_for()
    shot(page, "overlay-seed-envelope")
