"""Compare in a real headless Chromium, with the README's committed LoRA (docs/readme-run/lora) on the
built-in model: captions under the images and never over them (element boxes), images enlarged by
whole pixels, a failed request clearing the old images; and a blind A/B test of that LoRA against
the base model, voted on 12 pairs (keys and buttons, a reload in the middle), whose results table
shows the win rate and the interval those votes give. Screenshots in $G2RPO_SCREENSHOTS."""
import pytest
from sqlalchemy import text

from tests.test_app_browser import CHROMIUM, browser, page, shot  # noqa: F401  (fixtures)
from tests.test_votes import wilson_by_bisection

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium: `make test` installs it (apt-get install chromium)")
README_LORA = "docs/readme-run/lora"
PROMPTS = ["two red circles on a black background", "a blue square on a white background",
           "three yellow triangles on a gray background"]


def boxes(page, container: str) -> list[dict]:
    """Each figure's image and caption boxes, its image's drawn and natural width, and whether
    the image is made of whole blocks of one colour (nearest-neighbour enlargement)."""
    return page.evaluate("""(id) => [...document.querySelectorAll(`#${id} figure`)].map((f) => {
        const img = f.querySelector('img'), cap = f.querySelector('figcaption');
        const box = (e) => { const r = e.getBoundingClientRect(); return {l: r.left, t: r.top, r: r.right, b: r.bottom}; };
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const context = canvas.getContext('2d');
        context.drawImage(img, 0, 0);
        const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data, block = canvas.width / 32;
        let blocky = Number.isInteger(block);
        for (let y = 0; blocky && y < canvas.height; y++) for (let x = 0; blocky && x < canvas.width; x++) {
            const i = 4 * (y * canvas.width + x), j = 4 * ((y - y % block) * canvas.width + (x - x % block));
            blocky = pixels[i] === pixels[j] && pixels[i + 1] === pixels[j + 1] && pixels[i + 2] === pixels[j + 2];
        }
        return {img: box(img), cap: box(cap), width: img.getBoundingClientRect().width, natural: img.naturalWidth,
                blocky, caption: cap.innerText}; })""", container)


def overlap(a: dict, b: dict) -> bool:
    return a["l"] < b["r"] - 0.5 and b["l"] < a["r"] - 0.5 and a["t"] < b["b"] - 0.5 and b["t"] < a["b"] - 0.5


def check_captions_clear_of_images(shown: list[dict], side: int) -> None:
    assert shown
    for figure in shown:
        assert figure["cap"]["t"] >= figure["img"]["b"] - 0.5  # under its image
        assert figure["width"] == side and figure["natural"] == side and figure["blocky"]
    for figure in shown:  # and over no image, its own or another's
        assert not any(overlap(figure["cap"], other["img"]) for other in shown)


def test_compare_with_the_readmes_committed_lora_captions_under_the_images(page):
    page.get_by_role("tab", name="Compare").click()
    page.get_by_label("a LoRA folder or Hub id").check()
    page.locator("#compare-lora input").click()
    page.get_by_role("option", name=f"{README_LORA} (the README's)").click()
    page.click("#compare-button")
    page.locator("#compare-images img").nth(1).wait_for(timeout=180_000)
    pair = boxes(page, "compare-images")
    check_captions_clear_of_images(pair, 256)
    assert pair[0]["caption"].startswith("base model: builtin\nseed 0\nadherence ")
    assert pair[1]["caption"].startswith(f"tuned: LoRA {README_LORA}\nseed 0\nadherence ")
    assert "preference" in page.locator("#compare-scores").inner_text()

    page.get_by_text("Seed grid").click()
    page.click("#grid-button")
    page.locator("#compare-grid img").nth(11).wait_for(timeout=180_000)
    grid = boxes(page, "compare-grid")
    assert len(grid) == 12 and [f["caption"].split("\n")[0] for f in grid[:6]] == [f"seed {s}" for s in range(6)]
    check_captions_clear_of_images(grid, 192)
    shot(page, "compare-readme-lora")

    page.locator("#compare-prompt textarea").fill("a red zebra on a black background")
    page.click("#compare-button")
    page.locator("#compare-message").get_by_text("zebra").wait_for(timeout=30_000)
    assert page.locator("#compare-images img").count() == 0  # the old images went with the old prompt


def shown_pair(test_id: int) -> dict:
    """The pair on screen: shown, not voted on (the test reads the store to know where model A is)."""
    from jobs import db

    with db.session() as s:
        rows = s.execute(text("SELECT id, a_left FROM ab_pairs WHERE test_id = :t AND shown_at IS NOT NULL "
                              "AND choice IS NULL"), {"t": test_id}).all()
    assert len(rows) == 1
    return {"id": rows[0][0], "a_left": bool(rows[0][1])}


def wait_for_pair(page, test_id: int, number: int) -> None:
    """Wait for pair `number` on screen; on a timeout, say what the page and the store show instead
    (whether the vote reached the server, what had the keyboard, the message line)."""
    try:
        page.locator("#ab-pair").get_by_text(f"Pair {number} of 12:").wait_for(timeout=120_000)
    except Exception as err:
        from jobs import db

        with db.session() as s:
            pairs = s.execute(text("SELECT id, shown_at IS NOT NULL, choice FROM ab_pairs WHERE test_id = :t "
                                   "ORDER BY id"), {"t": test_id}).all()
        focus = page.evaluate("() => { const e = document.activeElement; return e ? `${e.tagName}#${e.id} "
                              "in ${e.closest('[id]') && e.closest('[id]').id}` : 'none'; }")
        shot(page, f"compare-blind-test-stalled-at-{number}")
        raise AssertionError(f"pair {number} did not come: message {page.locator('#ab-message').inner_text()!r}, "
                             f"on screen {page.locator('#ab-pair').inner_text()[:80]!r}, focus {focus}, "
                             f"pairs (id, shown, choice) {[tuple(p) for p in pairs]}") from err


PLAN = ["a"] * 7 + ["b"] * 2 + ["same"] * 3  # who the 12 votes go to


# Known bug, out of the default run until fixed (`make test-slow` or `pytest -m slow -k blind_test`):
# now and then, after the reload, the page never shows the pair after its vote. Reproduced once in
# eleven tries with a run in progress on the server: the vote was stored, the next pair drawn and
# marked shown, but the event's result never reached the page (its message line stayed empty).
# wait_for_pair reports that state. Twice in one full run on 2026-12-07.
@pytest.mark.slow
def test_a_blind_test_of_twelve_votes_shows_the_win_rate_and_interval_they_give(page, app_server):
    from jobs import votes

    page.get_by_role("tab", name="Compare").click()
    page.get_by_text("Blind A/B test").click()
    model_a = page.locator("#ab-model-a input")
    model_a.fill(README_LORA)
    model_a.press("Enter")
    page.get_by_label("my own list").check()
    page.locator("#ab-own textarea").fill("\n".join(PROMPTS))
    seeds = page.locator("#ab-seeds input")
    seeds.fill("4")
    seeds.blur()
    page.click("#ab-start")
    page.locator("#ab-pair").get_by_text("Pair 1 of 12").wait_for(timeout=180_000)
    test_id = votes.list_tests()[0]["id"]
    for number, wanted in enumerate(PLAN, start=1):
        page.locator("#ab-pair").get_by_text(f"Pair {number} of 12:").wait_for(timeout=120_000)
        pair = shown_pair(test_id)
        if number == 7:  # a reload in the middle: the same pair comes back for this browser
            page.reload()
            page.get_by_role("tab", name="Compare").click()
            page.get_by_text("Blind A/B test").click()
            page.locator("#ab-tests input").click()
            page.get_by_role("option", name=f"#{test_id}:", exact=False).click()
            page.locator("#ab-pair").get_by_text("Pair 7 of 12:").wait_for(timeout=120_000)
            assert shown_pair(test_id) == pair
        if number == 1:
            page.locator("#ab-pair").screenshot(path=str(shot_dir() / "compare-blind-test-pair.png"))
        side = "same" if wanted == "same" else ("left" if (wanted == "a") == pair["a_left"] else "right")
        if number % 2:  # keys on odd pairs, buttons on even ones
            page.keyboard.press({"left": "ArrowLeft", "right": "ArrowRight", "same": "0"}[side])
        else:
            page.click(f"#ab-{side}")
        if number < 12:
            wait_for_pair(page, test_id, number + 1)
    page.locator("#ab-message").get_by_text("You have voted on all 12 pairs").wait_for(timeout=60_000)

    stored = votes.votes([test_id])
    assert [v["winner"] for v in stored] == PLAN and all(v["voter"] is None for v in stored)
    page.locator("#ab-results-box").get_by_text("Results").first.click()
    page.click("#ab-show-results")
    table = page.locator("#ab-results table").first
    table.wait_for(timeout=30_000)
    low, high = wilson_by_bisection(7 + 3 / 2, 12)
    row = table.locator("tr", has_text="all").inner_text().split("\t")
    assert row[:7] == ["all", "12", "7", "2", "3", f"{8.5 / 12:.3f}", f"{low:.3f} – {high:.3f}"]
    assert f"**{8.5 / 12:.3f}**" not in page.locator("#ab-results").inner_text()  # rendered, not raw Markdown
    assert "A's win rate over B: 0.708 from 12 votes, 95% interval 0.428 – 0.887 (Wilson)" in \
        page.locator("#ab-results").inner_text()
    page.locator("#ab-results").scroll_into_view_if_needed()
    shot(page, "compare-blind-test-results")


def shot_dir():
    from tests.test_app_browser import SHOTS

    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
