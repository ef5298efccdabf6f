"""The blind A/B test's storage and statistics (jobs/votes.py, jobs/vote_stats.py), on a fresh store:
left/right placement balanced over many pairs, votes that survive a restart, bad votes refused with
nothing stored, the win rate's intervals, per-attribute rows, agreement with the rewards, the CSV."""
import csv
import io
import math
import random
import zipfile

import pytest
from sqlalchemy import text

from jobs import db, export, runs, vote_stats, votes
from jobs.testing import fake_config

PROMPTS = ["two red circles on a black background", "a blue square on a white background",
           "three yellow triangles on a gray background"]


def a_test(seeds: int = 4, prompts=PROMPTS, run_a: int | None = None, b: dict | None = None) -> int:
    a = {"reference": "docs/readme-run/lora", "label": "LoRA docs/readme-run/lora", "run_id": run_a}
    b = b or {"reference": "base", "label": "base model (builtin)", "run_id": None}
    return votes.create_test(a, b, {"model": {"name": "builtin"}, "sampling": {"steps": 16, "shift": 3.0},
                                    "rewards": ["adherence"]}, "own", prompts, seeds)


def stored_votes() -> list[tuple]:
    """Every pair's vote columns: what a refused vote must leave as it was."""
    with db.session() as s:
        return [tuple(row) for row in s.execute(text("SELECT id, shown_at, choice, voter, voted_at FROM ab_pairs ORDER BY id"))]


def shown_pair(test_id: int, visitor: str) -> dict:
    pair = votes.pending(test_id, visitor)
    votes.mark_shown(pair["id"], visitor)
    return pair


def test_the_biased_coin_keeps_left_and_right_balanced_and_unpredictable():
    rng, left, right, worst, close, repeats, last = random.Random(0), 0, 0, 0, 0, 0, None
    for _ in range(10_000):
        a_left = votes.place_a_left(left, right, rng)
        left, right = left + a_left, right + (not a_left)
        worst, close = max(worst, abs(left - right)), close + (abs(left - right) <= 3)
        repeats += a_left == last
        last = a_left
    # a fair coin strays by about 100 over 10,000 draws; this one keeps coming back to even, within 3
    # of it 90.6% of the time (its stationary law: 1/4 at 0, then 3/8, 3/16, 3/32 ...)
    assert abs(left - right) <= 2 and worst <= 12 and 0.88 < close / 10_000 < 0.93
    assert 0.25 < repeats / 10_000 < 0.5  # the same side twice in a row: often, so no strict alternation


def test_each_visitor_gets_every_item_once_with_a_balanced_order(store):
    test_id = a_test(seeds=8)  # 24 items
    for visitor in ("v1", "v2", "v3"):
        drawn = []
        while (pair := votes.draw(test_id, visitor)) is not None:
            drawn.append(pair)
        assert sorted(p["item"] for p in drawn) == list(range(24))  # each item once, every item
        assert [p["prompt"] for p in drawn] == [PROMPTS[p["item"] // 8] for p in drawn]
        assert [p["seed"] for p in drawn] == [p["item"] % 8 for p in drawn]
        assert abs(sum(p["a_left"] for p in drawn) - 12) <= 3
    assert sum(p["a_left"] for p in votes.votes([test_id])) == 0  # nothing voted yet


def test_a_vote_is_stored_with_its_pair_seed_order_voter_and_time_and_survives_a_restart(store):
    test_id = a_test()
    first = shown_pair(test_id, "visitor-1")
    ahead = votes.pending(test_id, "visitor-1", ahead=1)  # drawn ahead, not shown
    assert ahead["id"] != first["id"] and ahead["shown_at"] is None
    stored = votes.vote(first["id"], "visitor-1", "left", voter="hf:someone")
    assert stored["choice"] == "left" and stored["voter"] == "hf:someone" and stored["voted_at"] is not None
    second = shown_pair(test_id, "visitor-1")
    assert second["id"] == ahead["id"]  # the pair drawn ahead comes next

    db.dispose_all()  # the app stops; a new process opens the same data folder
    (vote,) = votes.votes([test_id])
    assert (vote["id"], vote["prompt"], vote["seed"], vote["a_left"], vote["choice"], vote["voter"]) == (
        first["id"], first["prompt"], first["seed"], first["a_left"], "left", "hf:someone")
    assert vote["winner"] == ("a" if first["a_left"] else "b")
    assert votes.pending(test_id, "visitor-1")["id"] == second["id"]  # resumed on the pair on screen
    assert votes.progress(test_id, "visitor-1") == (1, 12)
    votes.vote(second["id"], "visitor-1", "same")
    assert votes.visitor_votes("visitor-1") == 2 and votes.list_tests()[0]["votes"] == 2


@pytest.mark.parametrize("case, message", [
    ("unknown pair", "No pair #999999"),
    ("replayed pair", "already has a vote"),
    ("another visitor's pair", "was not shown to you"),
    ("a pair drawn ahead, never shown", "has not been shown yet"),
    ("no pair", "No pair to vote on"),
    ("a choice that is none", "A vote is left, right or same"),
])
def test_a_bad_vote_is_refused_with_a_message_and_stores_nothing(store, case, message):
    test_id = a_test()
    mine = shown_pair(test_id, "me")
    theirs = shown_pair(test_id, "someone else")
    ahead = votes.pending(test_id, "me", ahead=1)
    votes.vote(mine["id"], "me", "right")
    pair, choice = {"unknown pair": (999_999, "left"), "replayed pair": (mine["id"], "left"),
                    "another visitor's pair": (theirs["id"], "left"), "no pair": (None, "left"),
                    "a pair drawn ahead, never shown": (ahead["id"], "left"),
                    "a choice that is none": (mine["id"], "both")}[case]
    before = stored_votes()
    with pytest.raises(votes.VoteError, match=message):
        votes.vote(pair, "me", choice)
    assert stored_votes() == before


def wilson_by_bisection(wins: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The rates p whose score test accepts wins / n, found by bisection (not by Wilson's formula)."""
    p_hat = wins / n

    def edge(lo, hi, inside_at_hi):
        for _ in range(200):
            mid = (lo + hi) / 2
            inside = abs(p_hat - mid) <= z * math.sqrt(mid * (1 - mid) / n)
            lo, hi = (lo, mid) if inside == inside_at_hi else (mid, hi)
        return (lo + hi) / 2
    return edge(0.0, p_hat, True) if wins else 0.0, edge(p_hat, 1.0, False) if wins < n else 1.0


def test_wilson_matches_the_score_tests_inversion():
    for wins, n in ((8.5, 12), (0, 5), (5, 5), (3, 10), (50, 100)):
        assert vote_stats.wilson(wins, n) == pytest.approx(wilson_by_bisection(wins, n), abs=1e-9)
    assert all(math.isnan(x) for x in vote_stats.wilson(0, 0))


def vote(prompt: str, winner: str, scores=None) -> dict:
    return {"prompt": prompt, "winner": winner, "scores": scores or {}}


def test_ties_count_half_and_the_bootstrap_resamples_prompts():
    votes_ = [vote(PROMPTS[0], "a")] * 4 + [vote(PROMPTS[1], "b")] * 2 + [vote(PROMPTS[1], "same")] * 2
    t = vote_stats.tally(votes_)
    assert (t["votes"], t["a"], t["b"], t["same"]) == (8, 4, 2, 2) and t["rate"] == 5 / 8
    assert t["wilson"] == vote_stats.wilson(5, 8)
    low, high = t["bootstrap"]
    assert 0.25 <= low < 5 / 8 < high <= 1.0  # prompt 0 alone gives 1.0, prompt 1 alone 0.25
    assert all(math.isnan(x) for x in vote_stats.bootstrap_over_prompts(votes_[:4]))  # one prompt: undefined
    same_everywhere = [vote(p, "a") for p in PROMPTS]
    assert vote_stats.bootstrap_over_prompts(same_everywhere) == (1.0, 1.0)


def test_rows_per_attribute_and_agreement_with_each_reward():
    votes_ = [vote(PROMPTS[0], "a", {"adherence": [1.0, 0.5], "preference": [0.2, 0.9]}),
              vote(PROMPTS[1], "b", {"adherence": [0.3, 0.8], "preference": [0.4, 0.4]}),
              vote(PROMPTS[2], "same", {"adherence": [0.3, 0.8], "preference": [0.1, 0.4]}),
              vote("a photo of a cat", "a", {"adherence": [0.5, 0.5]})]  # not a prompt of the shapes world
    rows = {(a, v): t for a, v, t in vote_stats.by_attribute(votes_)}
    assert set(rows) == {("colour", "red"), ("colour", "blue"), ("colour", "yellow"), ("background", "black"),
                         ("background", "white"), ("background", "gray"), ("shape", "circle"), ("shape", "square"),
                         ("shape", "triangle"), ("count", "1"), ("count", "2"), ("count", "3")}
    assert rows[("colour", "red")]["rate"] == 1.0 and rows[("count", "3")]["rate"] == 0.5
    agreement = {r["reward"]: r for r in vote_stats.agreement(votes_)}
    assert agreement["adherence"] == {"reward": "adherence", "decisive": 3, "told_apart": 2, "agreed": 2, "rate": 1.0}
    assert agreement["preference"] == {"reward": "preference", "decisive": 2, "told_apart": 1, "agreed": 0, "rate": 0.0}


def test_the_votes_csv_comes_with_the_runs_export(store, tmp_path):
    run_id = runs.create(fake_config(iterations=4))
    test_id = a_test(prompts=["=HYPERLINK(1)"] + PROMPTS[1:], run_a=run_id)
    pairs = [shown_pair(test_id, "visitor") for _ in range(1)]
    votes.vote(pairs[0]["id"], "visitor", "left", voter="password")
    assert votes.tests_of_run(run_id) == [test_id]
    with zipfile.ZipFile(export.export_run(run_id, tmp_path / "run.zip")) as z:
        rows = list(csv.DictReader(io.StringIO(z.read("ab_votes.csv").decode())))
    assert len(rows) == 1 and list(rows[0]) == votes.CSV_COLUMNS
    row, pair = rows[0], pairs[0]
    assert (row["model_a"], row["model_b"], row["choice"], row["voter"]) == (
        "LoRA docs/readme-run/lora", "base model (builtin)", "left", "password")
    assert row["shown_left"] == ("A" if pair["a_left"] else "B") and row["winner"] == ("a" if pair["a_left"] else "b")
    assert row["visitor"] != "visitor" and len(row["visitor"]) == 10  # an alias, not the browser's token
    if pair["prompt"].startswith("="):
        assert row["prompt"] == "'" + pair["prompt"]  # not a formula in a spreadsheet
    other = runs.create(fake_config(iterations=4))
    with zipfile.ZipFile(export.export_run(other, tmp_path / "other.zip")) as z:
        assert "ab_votes.csv" not in z.namelist()


def cast_for(test_id: int, visitor: str, winners: list[str]) -> None:
    """Vote so that these models win ('a', 'b' or 'same'), whatever side each pair shows A on."""
    for wanted in winners:
        pair = shown_pair(test_id, visitor)
        side = "same" if wanted == "same" else ("left" if (wanted == "a") == pair["a_left"] else "right")
        votes.vote(pair["id"], visitor, side)


def test_the_runs_row_shows_the_runs_own_win_rate_from_the_test_with_most_votes(store):
    from app import runs_table

    tuned, other, untested = (runs.create(fake_config(iterations=4)) for _ in range(3))
    against_base = a_test(run_a=tuned)  # 12 items: the tuned run as model A against the base
    cast_for(against_base, "v1", ["a"] * 7 + ["b"] * 2 + ["same"] * 3)
    # the other run as model B (its own win rate is B's), against a checkpoint of the tuned run
    as_b = a_test(run_a=tuned, b={"reference": f"run:{other}:checkpoints/iter_000003", "label": "run 2",
                                  "run_id": other})
    cast_for(as_b, "v1", ["a", "a", "b"])
    rows = {row[0]: dict(zip(runs_table.COLUMNS, row)) for row in runs_table.table()}
    cell = "blind A/B: win rate (95%)"
    low, high = vote_stats.wilson(7 + 3 / 2, 12)
    assert rows[tuned][cell] == (f"0.708 ({low:.3f} – {high:.3f}) vs base model (builtin), 12 votes, "
                                 f"test #{against_base}; 1 more test in Compare")  # the test with most votes
    low, high = vote_stats.wilson(1, 3)
    assert rows[other][cell] == f"0.333 ({low:.3f} – {high:.3f}) vs LoRA docs/readme-run/lora, 3 votes, test #{as_b}"
    assert rows[untested][cell] == ""
