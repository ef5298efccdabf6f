"""The Monitor's branch explorer in a real headless Chromium, on a live G²RPO run of the built-in model:
the chosen (iteration, prompt, k) group's members at every λ, ranked by mixed advantage, each image
enlarged and captioned under it. Screenshots in $G2RPO_SCREENSHOTS."""
import re

import pytest

from tests.test_app_browser import CHROMIUM, browser, launch, monitor_view, page, shot, wait_until  # noqa: F401
from tests.test_app_browser_attribution import shot_path

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium: `make test` installs it (apt-get install chromium)")


def figures(page) -> list[dict]:
    """Each shown member image: its drawn width, whether it loaded, and its caption's text."""
    return page.evaluate("""() => [...document.querySelectorAll('#branch-images figure')].map((f) => {
        const img = f.querySelector('img'), cap = f.querySelector('figcaption');
        return {width: img.getBoundingClientRect().width, loaded: img.complete && img.naturalWidth > 0,
                below: cap.getBoundingClientRect().top >= img.getBoundingClientRect().bottom - 1,
                caption: cap.innerText}; })""")


def test_the_branch_explorer_shows_each_members_images_at_every_granularity_on_a_live_run(page):
    run_id = launch(page, iterations=11, name="branches-browser")  # keeps iterations 0 and 10 (branch_every 10)
    page.locator("#monitor-status").get_by_text(f"Run #{run_id}").wait_for()
    monitor_view(page, "attribution")
    page.locator("#branch-explorer").get_by_text("Branch explorer").click()
    shown = wait_until(lambda: figures(page), 240, "the first iteration's branches")
    assert len(shown) == 2 * 4  # Λ = {1, 2} rows of G = 4 members
    page.locator("#monitor-status").get_by_text("completed").wait_for(timeout=300_000)
    iteration = page.locator("#branch-iteration input")
    wait_until(lambda: iteration.input_value() == "iteration 10", 30, "the explorer to follow the newest iteration")
    wait_until(lambda: "Iteration 10 " in page.locator("#branch-images").inner_text(), 30, "iteration 10's group")

    page.locator("#branch-k input").click()
    page.get_by_role("option", name="2", exact=True).click()
    head = page.locator("#branch-images .branch-head")
    wait_until(lambda: "k = 2" in head.inner_text(), 30, "the group at k = 2")
    shown = figures(page)
    assert len(shown) == 8 and all(f["loaded"] and f["width"] == 128 and f["below"] for f in shown)
    advantages = []
    for f in shown:
        lines = f["caption"].splitlines()
        assert re.fullmatch(r"#\d · member \d", lines[0]) and re.fullmatch(r"adherence \d\.\d{3}", lines[1])
        assert re.fullmatch(r"z [+-]\d+\.\d{2}", lines[2]) and re.fullmatch(r"A [+-]\d+\.\d{2}", lines[3])
        advantages.append(float(lines[3][2:]))
    first_row = advantages[:4]
    assert first_row == sorted(first_row, reverse=True) and advantages[4:] == first_row  # ranked, same order per λ
    assert "background" in shown[0]["caption"] and "background" not in shown[4]["caption"]  # verifiers at λ = 1
    assert "a " in head.inner_text()  # the prompt, as text

    page.locator("#branch-explorer").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.locator("#branch-explorer").screenshot(path=str(shot_path("monitor-branch-explorer")))
    shot(page, "monitor-branch-explorer-page")
