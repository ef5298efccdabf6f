"""The blind A/B test's page handlers (app/ab_tab.py) on a fresh store, with the sampler replaced by
fixed images: who may vote, the per-visitor bound, a test's choices refused with a message and
nothing stored, a pair shown without labels or scores, and a bad vote refused on the page."""
import re

import numpy as np
import pytest

from app import ab_ahead, ab_tab
from jobs import votes

PROMPTS = "two red circles on a black background\na blue square on a white background"
TOKEN = "0123456789abcdef" * 2


@pytest.fixture
def drawn(store, monkeypatch):
    """The sampler replaced: model A draws white, model B black; scores say which is which."""
    monkeypatch.delenv("G2RPO_PASSWORD", raising=False)
    monkeypatch.delenv(ab_tab.ANONYMOUS_ENV, raising=False)

    def draw(test, pair):
        white, black = np.full((32, 32, 3), 255, np.uint8), np.zeros((32, 32, 3), np.uint8)
        return {"a": white, "b": black, "scores": {"adherence": [1.0, 0.0]}}
    monkeypatch.setattr(ab_ahead, "draw", draw)
    monkeypatch.setattr(ab_ahead, "prepare", lambda test, pair: None)


def start(token=TOKEN, authorized=False, seeds=2):
    return ab_tab._on_page(ab_tab._start)("docs/readme-run/lora", "base", "my own list", PROMPTS, seeds, token,
                                          authorized, None)


def vote(choice, test_id, pair_id, token=TOKEN, authorized=False):
    return ab_tab._on_page(ab_tab._voter(choice))(test_id, pair_id, token, authorized, None)


def test_a_pair_is_shown_without_labels_or_scores_and_a_vote_brings_the_next(drawn):
    token, test_id, pair_id, html, message = start()
    assert token == TOKEN and message == f"Test #{test_id} started." and "Pair 1 of 4" in html
    words = re.sub(r'src="[^"]*"', "", html)  # the text, without the images' data
    assert html.count("<img") == 2 and not {"adherence", "LoRA", "base", "model", "1.0"} & set(re.findall(r"[\w.]+", words))
    (pair,) = [p for p in votes._pairs(test_id, TOKEN) if p.id == pair_id]
    assert pair.shown_at is not None and pair.scores == {"adherence": [1.0, 0.0]}
    left_src = html.split('src="')[1].split('"')[0]
    white_first = ab_tab.pair_html({"a_left": True, "prompt": pair.prompt}, ab_ahead.draw(None, None), 1, 4)
    white = re.findall(r'src="([^"]+)"', white_first)[0]  # the left image when A is on the left
    assert (left_src == white) == pair.a_left  # A's image on A's side
    token, _, next_id, html, message = vote("left", test_id, pair_id)
    assert message == "Vote stored (left)." and next_id != pair_id and "Pair 2 of 4" in html
    assert votes.votes([test_id])[0]["winner"] == ("a" if pair.a_left else "b")


def test_a_new_visitor_gets_a_token_and_a_reload_resumes_the_pair_on_screen(drawn):
    token, test_id, pair_id, _, _ = start(token=None)
    assert ab_tab.TOKEN.match(token)
    again = ab_tab._on_page(ab_tab._resume)(test_id, token, False, None)
    assert again[2] == pair_id  # the same pair, not a new one
    other = ab_tab._on_page(ab_tab._resume)(test_id, None, False, None)
    assert other[0] != token and other[2] != pair_id  # another browser: another visitor, its own pair


@pytest.mark.parametrize("case, message", [
    ("replayed", "already has a vote"),
    ("another visitor's", "was not shown to you"),
    ("unknown", "No pair #424242"),
    ("drawn ahead", "has not been shown yet"),
])
def test_a_bad_vote_on_the_page_says_why_and_stores_nothing(drawn, case, message):
    _, test_id, pair_id, _, _ = start()
    _, _, other_id, _, _ = start(token="f" * 32)
    vote("right", test_id, pair_id)
    ahead = votes.pending(test_id, TOKEN, ahead=1)
    target = {"replayed": pair_id, "another visitor's": other_id, "unknown": 424242, "drawn ahead": ahead["id"]}[case]
    before = [(p.id, p.shown_at, p.choice) for t in (TOKEN, "f" * 32) for p in votes._pairs(test_id, t)]
    outputs = vote("left", test_id, target)
    assert outputs[4].startswith("⚠️ ") and message in outputs[4]
    if case == "replayed":  # the visitor's own pair voted on before: the page gets their next pair
        assert outputs[2] == votes.pending(test_id, TOKEN)["id"] != pair_id and "Pair 2 of 4" in outputs[3]
        assert "Your next pair is below" in outputs[4]
    else:
        assert outputs[2] is None and outputs[3] == ""
    assert [(p.id, p.shown_at, p.choice) for t in (TOKEN, "f" * 32) for p in votes._pairs(test_id, t)] == before


def test_anonymous_votes_follow_the_operators_setting(drawn, monkeypatch):
    monkeypatch.setenv("G2RPO_PASSWORD", "secret")
    assert "Log in to vote" in start()[4]  # a login exists: by default only logged-in users vote
    assert start(authorized=True)[4].startswith("Test #")
    monkeypatch.setenv(ab_tab.ANONYMOUS_ENV, "1")
    assert start()[4].startswith("Test #")
    monkeypatch.delenv("G2RPO_PASSWORD")
    monkeypatch.setenv(ab_tab.ANONYMOUS_ENV, "0")
    assert "Log in to vote" in start()[4]
    assert ab_tab.who(TOKEN, True, None)[1] == "password"  # a logged-in voter is named in the vote


def test_votes_per_visitor_are_bounded(drawn, monkeypatch):
    monkeypatch.setenv("G2RPO_MAX_VOTES_PER_VISITOR", "2")
    _, test_id, pair_id, _, _ = start()
    _, _, pair_id, _, _ = vote("left", test_id, pair_id)
    _, _, pair_id, html, message = vote("same", test_id, pair_id)
    assert pair_id is None and html == "" and "the 2 votes a visitor may" in message
    _, _, other_test_pair, _, message = start()  # the bound counts every test
    assert other_test_pair is None and "the 2 votes a visitor may" in message
    assert votes.visitor_votes(TOKEN) == 2


@pytest.mark.parametrize("a, b, prompt_set, own, seeds, message", [
    ("base", "base", "my own list", PROMPTS, 1, "Choose two different models"),
    ("docs/readme-run/lora", "docs/readme-run/lora", "my own list", PROMPTS, 1, "Choose two different models"),
    ("docs/readme-run/lora", "/etc", "my own list", PROMPTS, 1, "outside the folders Compare reads LoRAs from"),
    ("docs/readme-run/lora", "base", "my own list", "a red zebra on a black background", 1, "zebra"),
    ("docs/readme-run/lora", "base", "my own list", "", 1, "Enter a prompt"),
    ("docs/readme-run/lora", "base", "my own list", PROMPTS, 0, "Seeds per prompt: a whole number in 1 .. 8"),
    ("docs/readme-run/lora", "base", "my own list", PROMPTS, 2.5, "Seeds per prompt"),
    ("docs/readme-run/lora", "base", "held-out prompts", "", 10, "Seeds per prompt"),
    ("docs/readme-run/lora", "base", "everything", "", 1, "Choose the prompts"),
])
def test_a_bad_test_is_refused_and_stores_nothing(drawn, a, b, prompt_set, own, seeds, message):
    outputs = ab_tab._on_page(ab_tab._start)(a, b, prompt_set, own, seeds, TOKEN, False, None)
    assert message in outputs[4] and outputs[2] is None
    assert votes.list_tests() == []


def test_the_prompt_sets(drawn):
    held_out = votes.get_test(ab_tab.new_test("docs/readme-run/lora", "base", "held-out prompts", "", 1))
    from engine.world import eval_prompts

    assert held_out["prompts"] == eval_prompts() and held_out["prompt_set"] == "held-out"
    assert held_out["label_b"] == "base model (builtin)" and held_out["settings"]["rewards"][0] == "adherence"
    sample = votes.get_test(ab_tab.new_test("base", "docs/readme-run/lora", "the run's sample prompts", "", 1))
    assert sample["prompts"] and sample["model_a"] == "base" and sample["label_a"] == "base model (builtin)"


def test_the_next_pair_is_drawn_ahead_when_one_is_shown(drawn, monkeypatch):
    prepared = []
    monkeypatch.setattr(ab_ahead, "prepare", lambda test, pair: prepared.append(pair))
    _, test_id, pair_id, _, _ = start()
    (ahead,) = prepared
    assert ahead["id"] != pair_id and ahead["shown_at"] is None  # drawn for this visitor, not shown yet
    _, _, next_id, _, _ = vote("left", test_id, pair_id)
    assert next_id == ahead["id"] and len(prepared) == 2 and prepared[1]["id"] not in (pair_id, next_id)


def test_drawing_ahead_is_bounded_and_a_drawn_pair_is_not_drawn_again(monkeypatch):
    import threading

    release, calls = threading.Event(), []

    def slow(test, pair):
        calls.append(pair["id"])
        release.wait(10)
        return {"pair": pair["id"]}
    monkeypatch.setattr(ab_ahead, "draw", slow)
    monkeypatch.setattr(ab_ahead, "_drawn", type(ab_ahead._drawn)())
    for pair_id in range(1, 10):
        ab_ahead.prepare({}, {"id": pair_id})
    assert list(ab_ahead._drawn) == [1, 2, 3, 4]  # one drawing, three waiting; the rest drawn when shown
    release.set()
    assert ab_ahead.images({}, {"id": 2}) == {"pair": 2}
    assert calls.count(2) == 1  # the pair drawn ahead was not drawn again
    assert ab_ahead.images({}, {"id": 7}) == {"pair": 7}  # not drawn ahead: drawn now
