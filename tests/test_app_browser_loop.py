"""The researcher's daily loop in a real headless Chromium: a link opens a run and a reload keeps it,
the Monitor opens the running run, the Runs table sorts and filters, a run is cloned into the Launch
form, and "train longer" continues a completed run at the next iteration with its old records intact
(trained live on the built-in model, a few iterations). Screenshots in $G2RPO_SCREENSHOTS."""
import pytest

from tests.test_app_browser import (CHROMIUM, browser, launch, page, plot_points, select_run,  # noqa: F401
                                    shot, stored, wait_until)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium: `make test` installs it (apt-get install chromium)")


def selected_tab(page) -> str:
    return page.locator("button[role=tab][aria-selected=true]").first.inner_text().strip()


def url_param(page, key: str):
    return page.evaluate(f"new URL(window.location.href).searchParams.get('{key}')")


def test_the_monitor_opens_the_run_in_progress(page, app_server):
    from jobs import runs
    from jobs.models import utcnow

    running = stored(5, "running")  # its heartbeat is fresh: in progress
    try:
        page.reload()
        page.wait_for_selector("#launch-button")
        page.get_by_role("tab", name="Runs").click()
        assert page.locator("#selected-run textarea").input_value() == ""  # no run 0 selected
        page.get_by_role("tab", name="Monitor").click()
        page.locator("#monitor-status").get_by_text(f"Run #{running}").wait_for(timeout=20_000)
        assert "running" in page.locator("#monitor-status").inner_text()
        shot(page, "loop-monitor-opens-running")
    finally:
        runs._transition(running, ("running",), status="completed", heartbeat_at=utcnow())


def test_a_link_opens_its_run_and_a_reload_keeps_run_and_tab(browser, app_server):
    linked, other = stored(4, "completed", checkpoint_at=(4,)), stored(30, "completed", checkpoint_at=(30,))
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{app_server['url']}?run={linked}&__theme=light")
        page.locator("#monitor-status").get_by_text(f"Run #{linked}").wait_for()
        assert selected_tab(page) == "Monitor"
        wait_until(lambda: plot_points(page, "reward-plot", "reward0") == 4, 20, "the linked run's curve")
        # a few iterations: ticks at whole iterations, and the legend clear of the panel's title
        layout = page.evaluate("""() => { const p = document.querySelector('#reward-plot .js-plotly-plot');
            const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
            return {dtick: p._fullLayout.xaxis.dtick, legend: box(p.querySelector('.legend')),
                    titles: [...p.querySelectorAll('.annotation')].map(box),
                    ticks: [...p.querySelectorAll('.xtick text')].map((t) => t.textContent)}; }""")
        assert layout["dtick"] == 1 and all(float(t) == int(float(t)) for t in layout["ticks"]), layout
        l0, t0, r0, b0 = layout["legend"]
        assert layout["titles"] and all(r0 <= l or r <= l0 or b0 <= t or b <= t0 for l, t, r, b in layout["titles"])
        assert url_param(page, "__theme") == "light"  # the page's own parameters stay
        shot(page, "loop-link-opens-run")

        select_run(page, other)  # the Runs tab: the URL follows the tab and the run
        wait_until(lambda: url_param(page, "run") == str(other) and url_param(page, "tab") == "runs", 20,
                   "the URL to name the run and the tab")
        page.reload()
        page.locator("#selected-info").get_by_text(f"Run #{other}").wait_for()
        assert selected_tab(page) == "Runs" and page.locator("#selected-run textarea").input_value() == str(other)
        shot(page, "loop-reload-keeps-runs-tab")
        page.get_by_role("tab", name="Monitor").click()
        page.locator("#monitor-status").get_by_text(f"Run #{other}").wait_for()
        page.reload()
        page.locator("#monitor-status").get_by_text(f"Run #{other}").wait_for()
        assert selected_tab(page) == "Monitor"
        wait_until(lambda: plot_points(page, "reward-plot", "reward0") == 30, 20, "the run's curve after the reload")
        shot(page, "loop-reload-keeps-monitor")
    finally:
        page.close()


def rows(page) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('#runs-table tbody [role=row], #runs-table [role=row]')]
        .map((r) => r.innerText.replace(/\\s+/g, ' ').trim()).filter((t) => t && !t.startsWith('id '))""")


def test_the_runs_table_sorts_and_filters_and_a_run_clones_into_the_form(page):
    from jobs import api

    first, second = stored(3, "completed"), stored(6, "cancelled")
    api.annotate(first, tags=["lr sweep"])
    page.get_by_role("tab", name="Runs").click()
    wait_until(lambda: any("lr sweep" in row for row in rows(page)), 20, "the tagged run in the table")
    assert int(rows(page)[0].split()[0]) > int(rows(page)[-1].split()[0])  # newest first
    header = page.locator("#runs-table [data-testid=header-0]")
    header.hover()
    header.locator("button[aria-label='Open cell menu']").click()
    page.get_by_role("menuitem", name="Sort ascending").click()
    wait_until(lambda: int(rows(page)[0].split()[0]) < int(rows(page)[-1].split()[0]), 10, "ascending ids")
    page.wait_for_timeout(4000)  # the table refreshes every 3 s: the order stays
    assert int(rows(page)[0].split()[0]) < int(rows(page)[-1].split()[0])
    page.locator("#runs-table input[placeholder='Filter...']").fill("lr sweep")
    wait_until(lambda: len(rows(page)) == 1 and rows(page)[0].startswith(f"{first} "), 10, "the tagged run alone")
    shot(page, "loop-runs-sorted-filtered")
    page.locator("#runs-table [data-testid^='cell-']:visible", has_text="lr sweep").first.click()  # the filtered row
    wait_until(lambda: page.locator("#selected-run textarea").input_value() == str(first), 10, "the clicked row selected")
    page.locator("#selected-info").get_by_text(f"Run #{first}").wait_for()

    select_run(page, second)
    page.click("#clone-button")
    page.locator("#launch-preset input").wait_for()
    wait_until(lambda: page.locator("#launch-preset input").input_value() == f"run #{second}", 20, "the run as preset")
    assert selected_tab(page) == "Launch"
    assert page.locator("#field-iterations input").input_value() == "300"  # the run's planned iterations
    shot(page, "loop-cloned-into-the-form")


def test_train_longer_continues_a_completed_run_at_the_next_iteration_with_its_records(page):
    from jobs import api

    run_id = launch(page, iterations=2, name="train longer")
    status = page.locator("#monitor-status")
    status.get_by_text(f"Run #{run_id}").wait_for()
    status.get_by_text("completed").wait_for(timeout=300_000)
    before = api.get_run(run_id)
    metrics, evaluations, samples = api.latest_metrics(run_id), api.evaluations(run_id), api.samples(run_id)
    assert [m["iteration"] for m in metrics] == [0, 1] and before["checkpoints"] == ["checkpoints/iter_000002"]

    select_run(page, run_id)
    assert not page.locator("#resume-button").is_enabled()  # a completed run goes on by training longer
    more = page.locator("#more-iterations input")
    more.fill("2")
    more.blur()
    page.click("#train-longer-button")
    page.locator("#runs-message").get_by_text(f"Run #{run_id} queued to train longer: iterations 3–4 of 4").wait_for()
    shot(page, "loop-train-longer-queued")
    page.get_by_role("tab", name="Monitor").click()
    status.get_by_text("4/4 iterations").wait_for(timeout=300_000)
    status.get_by_text("completed").wait_for(timeout=60_000)
    wait_until(lambda: plot_points(page, "reward-plot", "adherence") == 4, 30, "all four iterations drawn")
    shot(page, "loop-train-longer-monitor")

    after = api.get_run(run_id)
    assert after["started_at"] == before["started_at"] and after["active_seconds"] > before["active_seconds"]
    assert after["checkpoints"] == ["checkpoints/iter_000002", "checkpoints/iter_000004"]
    now = api.latest_metrics(run_id)
    assert [m["iteration"] for m in now] == [0, 1, 2, 3] and now[:2] == metrics  # the old records intact
    assert api.evaluations(run_id)[:len(evaluations)] == evaluations and api.samples(run_id)[:len(samples)] == samples
    select_run(page, run_id)
    page.get_by_text("Log of the selected run").click()
    log = page.locator("#run-log textarea")
    wait_until(lambda: "[4/4] reward adherence" in log.input_value(), 20, "the log's last iteration")
    text = log.input_value()
    assert "continuing at iteration 3 of 4, from its checkpoint after 2 iterations" in text
    assert "[1/2] reward adherence" in text and "[3/4] reward adherence" in text
    shot(page, "loop-train-longer-log")
