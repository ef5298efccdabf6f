"""Blind A/B tests: their pairs and votes, stored (app/ab_tab.py shows them; jobs/vote_stats.py sums them up).

A test's items are its prompts × seeds. Each visitor (a browser's random token, or a Hugging Face
account) gets the items in a random order, each at most once. `draw` stores a pair (item, and
whether model A is on the left) before its images exist, `mark_shown` records that the visitor
saw it, `vote` the choice. A vote is refused with a VoteError, and nothing is stored, for a pair
that does not exist, was drawn for another visitor, was not shown yet, or was already voted on.

Left or right: Efron's biased coin, per visitor and test: a fair coin while the visitor has seen
model A on the left as often as on the right, else a 2/3 chance for the side that lags. Where a
fair coin's difference between the sides wanders off as the square root of the pairs, this one
keeps coming back to even: within 3 of it 90% of the time, however many pairs a visitor sees;
and no pair's order is ever certain in advance.
"""
from __future__ import annotations

import csv
import io
import random

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from jobs import db
from jobs.models import VotePair, VoteTest, utcnow

CHOICES = ("left", "right", "same")
LEAN = 2 / 3  # Efron's biased coin: the chance of the lagging side
_coin = random.SystemRandom()  # the order shown must not be guessable from earlier pairs' seeds


class VoteError(ValueError):
    """A vote or a test that cannot be: the message is one line for the voter."""


class AlreadyVoted(VoteError):
    """The visitor voted on this pair before (a double click, or a page that missed the answer)."""


def place_a_left(a_left: int, a_right: int, rng: random.Random = _coin) -> bool:
    """Whether the next pair shows model A on the left, given how often it was on each side so far."""
    chance = 0.5 if a_left == a_right else (LEAN if a_left < a_right else 1 - LEAN)
    return rng.random() < chance


def winner(pair: dict) -> str | None:
    """'a', 'b' or 'same' from the choice as cast and the order shown; None before the vote."""
    if pair["choice"] in (None, "same"):
        return pair["choice"]
    return "a" if (pair["choice"] == "left") == pair["a_left"] else "b"


def create_test(a: dict, b: dict, settings: dict, prompt_set: str, prompts: list[str], seeds: int,
                created_by: str | None = None) -> int:
    """Store a test; `a`, `b`: {reference, label, run_id} of each model. Returns its id."""
    row = VoteTest(model_a=a["reference"], model_b=b["reference"], label_a=a["label"], label_b=b["label"],
                   run_a=a.get("run_id"), run_b=b.get("run_id"), settings=settings, prompt_set=prompt_set,
                   prompts=list(prompts), seeds=seeds, created_by=created_by)
    with db.session() as s:
        s.add(row)
        s.commit()
        return row.id


def get_test(test_id: int) -> dict:
    with db.session() as s:
        row = s.get(VoteTest, test_id)
        if row is None:
            raise VoteError(f"No blind test #{test_id}.")
        return row.model_dump()


def list_tests(limit: int = 100) -> list[dict]:
    """Newest first, each with its number of votes."""
    with db.session() as s:
        counted = (select(VotePair.test_id, func.count().label("votes")).where(VotePair.choice.is_not(None))
                   .group_by(VotePair.test_id).subquery())
        rows = s.execute(select(VoteTest, func.coalesce(counted.c.votes, 0))
                         .outerjoin(counted, counted.c.test_id == VoteTest.id)
                         .order_by(VoteTest.id.desc()).limit(limit)).all()
    return [{**test.model_dump(), "votes": votes} for test, votes in rows]


def visitor_votes(visitor: str) -> int:
    """Votes this visitor cast, in every test (the per-visitor bound counts them)."""
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(VotePair)
                        .where(VotePair.visitor == visitor, VotePair.choice.is_not(None)))


def _pairs(test_id: int, visitor: str) -> list[VotePair]:
    with db.session() as s:
        return list(s.scalars(select(VotePair).where(VotePair.test_id == test_id, VotePair.visitor == visitor)
                              .order_by(VotePair.id)))


def progress(test_id: int, visitor: str) -> tuple[int, int]:
    """(pairs this visitor voted on, items in the test)."""
    test = get_test(test_id)
    return sum(p.choice is not None for p in _pairs(test_id, visitor)), len(test["prompts"]) * test["seeds"]


def pending(test_id: int, visitor: str, ahead: int = 0) -> dict | None:
    """The visitor's pair to show now (ahead=0: the oldest not voted on, shown or not) or the one
    after it (ahead=1: what to draw in advance), drawing new pairs as needed; None when the test
    has no item left for them."""
    waiting = [p for p in _pairs(test_id, visitor) if p.choice is None]
    while len(waiting) <= ahead:
        if draw(test_id, visitor) is None:
            return None
        waiting = [p for p in _pairs(test_id, visitor) if p.choice is None]
    return waiting[ahead].model_dump()


def draw(test_id: int, visitor: str, rng: random.Random = _coin) -> dict | None:
    """Store a new pair for the visitor: an item they have not had, A's side by the biased coin.
    None when they have had every item."""
    test = get_test(test_id)
    for _ in range(5):  # two requests of one visitor may draw the same item at once: draw again
        had = _pairs(test_id, visitor)
        left = [i for i in range(len(test["prompts"]) * test["seeds"]) if i not in {p.item for p in had}]
        if not left:
            return None
        item = rng.choice(left)
        a_left = sum(p.a_left for p in had)
        pair = VotePair(test_id=test_id, visitor=visitor, item=item, prompt=test["prompts"][item // test["seeds"]],
                        seed=item % test["seeds"], a_left=place_a_left(a_left, len(had) - a_left))
        try:
            with db.session() as s:
                s.add(pair)
                s.commit()
                return pair.model_dump()
        except IntegrityError:
            continue
    raise VoteError("Too many pairs drawn at once for this visitor; reload the page.")


def set_scores(pair_id: int, scores: dict) -> None:
    with db.session() as s:
        s.execute(update(VotePair).where(VotePair.id == pair_id).values(scores=scores))
        s.commit()


def mark_shown(pair_id: int, visitor: str) -> None:
    """The visitor has the pair on screen: from now on they may vote on it (the first showing counts)."""
    with db.session() as s:
        s.execute(update(VotePair).where(VotePair.id == pair_id, VotePair.visitor == visitor,
                                         VotePair.shown_at.is_(None)).values(shown_at=utcnow()))
        s.commit()


def vote(pair_id, visitor: str, choice: str, voter: str | None = None) -> dict:
    """Record `choice` (left, right or same) on a pair shown to `visitor`; VoteError, with nothing
    stored, for anything else. Returns the voted pair."""
    if choice not in CHOICES:
        raise VoteError(f"A vote is left, right or same, not {str(choice)[:20]!r}.")
    if not isinstance(pair_id, int) or isinstance(pair_id, bool) or not 0 < pair_id < 2**63:
        raise VoteError("No pair to vote on: draw a pair first.")
    with db.session() as s:  # one conditional update: a replay racing the first vote finds it cast
        done = s.execute(update(VotePair).where(VotePair.id == pair_id, VotePair.visitor == visitor,
                                                VotePair.shown_at.is_not(None), VotePair.choice.is_(None))
                         .values(choice=choice, voter=voter, voted_at=utcnow())).rowcount
        s.commit()
        pair = s.get(VotePair, pair_id)
    if done == 1:
        return pair.model_dump()
    if pair is None:
        raise VoteError(f"No pair #{pair_id}: the vote was not stored.")
    if pair.visitor != visitor:
        raise VoteError(f"Pair #{pair_id} was not shown to you: the vote was not stored.")
    if pair.shown_at is None:
        raise VoteError(f"Pair #{pair_id} has not been shown yet: the vote was not stored.")
    raise AlreadyVoted(f"Pair #{pair_id} already has a vote: the vote was not stored.")


def votes(test_ids: list[int]) -> list[dict]:
    """Every vote cast in these tests, oldest first, with its winner ('a', 'b' or 'same')."""
    with db.session() as s:
        rows = s.scalars(select(VotePair).where(VotePair.test_id.in_(test_ids), VotePair.choice.is_not(None))
                         .order_by(VotePair.voted_at, VotePair.id))
        return [{**p.model_dump(), "winner": winner(p.model_dump())} for p in rows]


def tests_of_run(run_id: int) -> list[int]:
    """The tests in which one model is a checkpoint of this run."""
    with db.session() as s:
        return list(s.scalars(select(VoteTest.id).where((VoteTest.run_a == run_id) | (VoteTest.run_b == run_id))
                              .order_by(VoteTest.id)))


def tests_of_runs(run_ids: list[int]) -> dict[int, list[dict]]:
    """{run id: the tests a checkpoint of it takes part in, each with its votes counted by winner
    ("a", "b", "same")}, for the Runs table, which asks every few seconds: two queries, the second
    grouped, whatever the number of runs and votes."""
    if not run_ids:
        return {}
    with db.session() as s:
        tests = {t.id: {**t.model_dump(), "a": 0, "b": 0, "same": 0} for t in s.scalars(
            select(VoteTest).where(VoteTest.run_a.in_(run_ids) | VoteTest.run_b.in_(run_ids)))}
        counted = s.execute(select(VotePair.test_id, VotePair.choice, VotePair.a_left, func.count())
                            .where(VotePair.test_id.in_(list(tests)), VotePair.choice.is_not(None))
                            .group_by(VotePair.test_id, VotePair.choice, VotePair.a_left)) if tests else []
        for test_id, choice, a_left, n in counted:
            tests[test_id][winner({"choice": choice, "a_left": a_left})] += n
    out: dict[int, list[dict]] = {}
    for test in tests.values():
        for run_id in {test["run_a"], test["run_b"]} & set(run_ids):
            out.setdefault(run_id, []).append(test)
    return out


CSV_COLUMNS = ["test", "model_a", "model_b", "pair", "prompt", "seed", "shown_left", "shown_right", "choice",
               "winner", "voter", "visitor", "shown_at", "voted_at"]


def votes_csv(test_ids: list[int]) -> str:
    """One row per vote: the test's two models, the pair, the order shown, the choice as cast and
    its winner, who voted (when logged in) and when. Visitors are kept as a short stable alias."""
    import hashlib

    def cell(text) -> str:  # a spreadsheet must not read a prompt or a name as a formula
        text = "" if text is None else str(text)
        return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

    tests = {t: get_test(t) for t in test_ids}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for v in votes(test_ids):
        test = tests[v["test_id"]]
        left, right = ("A", "B") if v["a_left"] else ("B", "A")
        alias = v["visitor"] if v["visitor"].startswith("hf:") else hashlib.sha256(v["visitor"].encode()).hexdigest()[:10]
        writer.writerow([v["test_id"], cell(test["label_a"]), cell(test["label_b"]), v["id"], cell(v["prompt"]), v["seed"],
                         left, right, v["choice"], v["winner"], cell(v["voter"]), cell(alias), v["shown_at"],
                         v["voted_at"]])
    return out.getvalue()
