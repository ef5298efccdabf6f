"""The Monitor's per-step attribution in a real headless Chromium, on a live G²RPO run of the built-in
model: the default map is each step's share of each score's variance, one block per reward and
verifier, with the window's table of shares and intervals under it. Screenshots in $G2RPO_SCREENSHOTS."""
import pytest

from tests.test_app_browser import CHROMIUM, browser, launch, monitor_view, page, shot, wait_until  # noqa: F401

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium: `make test` installs it (apt-get install chromium)")


def heatmap_blocks(page) -> list[str]:
    """The names of the step map's traces (one heatmap per reward or verifier block)."""
    return page.evaluate("""() => { const p = document.querySelector('#step-heatmap .js-plotly-plot');
        return p && p.data ? p.data.map((t) => t.name || '') : []; }""")


def test_the_step_map_shows_each_verifiers_variance_share_on_a_live_run(page):
    run_id = launch(page, iterations=12, name="attribution-browser")
    page.locator("#monitor-status").get_by_text(f"Run #{run_id}").wait_for()
    monitor_view(page, "attribution")
    blocks = wait_until(lambda: heatmap_blocks(page), 240, "the step map's blocks")
    assert blocks == ["adherence", "background", "colour", "shape", "count"]
    summary = page.locator("#step-summary")
    wait_until(lambda: "| k |" in summary.inner_text() or "k\tadherence" in summary.inner_text(), 60, "the window's table")
    text = summary.inner_text()
    assert "background" in text and "a column sums to 100%" in text
    page.locator("#monitor-status").get_by_text("completed").wait_for(timeout=300_000)
    page.wait_for_timeout(2500)  # the last tick
    page.locator("#step-heatmap").scroll_into_view_if_needed()
    shot(page, "monitor-variance-share")
    page.locator("#step-heatmap").screenshot(path=str(shot_path("monitor-variance-share-map")))
    summary.screenshot(path=str(shot_path("monitor-variance-share-table")))
    # the |advantage| map is still one click away
    page.get_by_label("mean |advantage|").check()
    wait_until(lambda: heatmap_blocks(page) == [""] or len(heatmap_blocks(page)) == 1, 30, "the |advantage| map")


def shot_path(name: str):
    from tests.test_app_browser import SHOTS

    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / f"{name}.png"
