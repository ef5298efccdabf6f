"""The blind A/B test in Compare: two models and a prompt set; pairs drawn from the same seed, shown
left and right in a random order with no labels and no scores; the voter picks left, right or
"same" (keys ← or 1, → or 2, ↓ or 0: static/ab_keys.js) while the next pair is drawn ahead
(app/ab_ahead.py). Votes go to the database (jobs/votes.py); results on demand (app/ab_results.py).

Who votes: a logged-in user; anyone else where the operator allows it (G2RPO_ANONYMOUS_VOTES=1;
by default only an app without a login lets anonymous visitors vote). A visitor is their Hugging
Face account when signed in, else a random token kept in the browser's storage (so a reload, or
an app restart, resumes the test where they left it); each may cast G2RPO_MAX_VOTES_PER_VISITOR votes.
"""
from __future__ import annotations

import functools
import os
import re
import secrets
import tempfile
from pathlib import Path

import gradio as gr

from app import ab_ahead, ab_results, auth, compare_html, model_choice
from app.errors import in_message_line, page_error, user_errors
from app.redact import redact
from engine.config.limits import limit

PROMPT_SETS = {"held-out prompts": "held-out", "the run's sample prompts": "sample", "my own list": "own"}
MAX_PROMPTS, MAX_SEEDS, MAX_PAIRS = 200, 8, 1000  # per test
PAIR_SIDE = 320  # the built-in model's 32x32 at 10x
ANONYMOUS_ENV = "G2RPO_ANONYMOUS_VOTES"
TOKEN = re.compile(r"^[0-9a-f]{32}$")
VOTES_CSV = Path(tempfile.gettempdir()) / "g2rpo-votes"  # outside the data folder, which is never served
INTRO = ("Two models draw each prompt from the same seed; you see the two images in a random order, without "
         "labels or scores, and pick the better one (or \"about the same\"). Pick the models and the prompts, "
         "start a new test (or continue one), then vote: ← or 1 left, → or 2 right, ↓ or 0 same.")


def anonymous_allowed() -> bool:
    """Whether a visitor who has not logged in may vote (G2RPO_ANONYMOUS_VOTES; unset: when the app has no login)."""
    raw = os.environ.get(ANONYMOUS_ENV, "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    return not auth.required()


def who(token, authorized: bool, profile) -> tuple[str, str | None, str]:
    """(visitor, voter, token): whose pairs these are, who votes when logged in ("hf:<user>" or
    "password"), and the browser's token (a new one when it has none). gr.Error if they may not vote."""
    token = token if isinstance(token, str) and TOKEN.match(token) else secrets.token_hex(16)
    username = getattr(profile, "username", None)
    logged_in = bool(authorized) or auth.allowed(profile)
    if not logged_in and not anonymous_allowed():
        raise gr.Error(f"Log in to vote: on this app only logged-in users vote ({ANONYMOUS_ENV}=1 lets anyone).")
    voter = f"hf:{username}" if username else ("password" if logged_in else None)
    return (f"hf:{username}" if username else token), voter, token


def _side(reference) -> model_choice.Side:
    try:
        return model_choice.resolve(reference)
    except model_choice.ChoiceError as err:
        raise page_error(redact(str(err))) from None


def _prompts(prompt_set: str, own: str, settings: dict) -> list[str]:
    from engine.models import SMALL_MODELS

    model = settings["model"]["name"]
    if PROMPT_SETS.get(prompt_set) == "own":
        return model_choice.prompt_lines(own, model, at_most=MAX_PROMPTS)
    if PROMPT_SETS.get(prompt_set) == "sample":
        prompts = settings.get("sample_prompts") or []
    elif PROMPT_SETS.get(prompt_set) == "held-out":
        prompts = settings.get("eval_prompts") or []
        if not prompts and model in SMALL_MODELS:
            from engine.world import eval_prompts

            prompts = eval_prompts()
    else:
        raise gr.Error(f"Choose the prompts: {', '.join(PROMPT_SETS)}.")
    if not prompts:
        raise gr.Error(f"The models have no {prompt_set} to draw: give your own list.")
    if len(prompts) > MAX_PROMPTS:
        raise gr.Error(f"The {prompt_set} are {len(prompts):,}; a test takes at most {MAX_PROMPTS}: give your own list.")
    return list(prompts)


def new_test(model_a, model_b, prompt_set: str, own: str, seeds, created_by: str | None = None) -> int:
    """Store a test of model A against model B; gr.Error (nothing stored) for a bad choice."""
    from jobs import votes

    a, b = _side(model_a), _side(model_b)
    if a.reference == b.reference:
        raise gr.Error("Choose two different models.")
    try:
        settings = model_choice.shared_settings(a, b)
    except model_choice.ChoiceError as err:
        raise page_error(redact(str(err))) from None
    try:
        seeds = int(seeds) if float(seeds) == int(float(seeds)) else 0
    except (TypeError, ValueError, OverflowError):
        seeds = 0
    if not 1 <= seeds <= MAX_SEEDS:
        raise gr.Error(f"Seeds per prompt: a whole number in 1 .. {MAX_SEEDS}.")
    prompts = _prompts(prompt_set, own, settings)
    if len(prompts) * seeds > MAX_PAIRS:
        raise gr.Error(f"{len(prompts)} prompts × {seeds} seeds is more than the {MAX_PAIRS} pairs a test may have.")
    named = lambda s: {"reference": s.reference, "run_id": s.run_id,  # noqa: E731
                       "label": s.label if s.settings else f"base model ({model_choice.model_name(settings['model'])})"}
    kept = {k: settings[k] for k in ("model", "sampling", "rewards")}
    return votes.create_test(named(a), named(b), kept, PROMPT_SETS[prompt_set], prompts, seeds, created_by)


def pair_html(pair: dict, drawn: dict, number: int, total: int) -> str:
    left, right = (drawn["a"], drawn["b"]) if pair["a_left"] else (drawn["b"], drawn["a"])
    figures = [compare_html.figure(left, ["left", "← or 1"], PAIR_SIDE, alt="left image"),
               compare_html.figure(right, ["right", "→ or 2"], PAIR_SIDE, alt="right image")]
    return compare_html.rows([(f"Pair {number} of {total}: which image is better for “{pair['prompt']}”?", figures)])


def show(test_id, token, authorized: bool, profile, note: str = "") -> tuple:
    """(token, test, pair id, pair HTML, message) with the visitor's next pair on screen."""
    from jobs import votes

    visitor, _, token = who(token, authorized, profile)
    if test_id in (None, ""):
        raise gr.Error("Start a new test or choose one to continue.")
    test = _test(test_id)
    voted, total = votes.progress(test["id"], visitor)
    if votes.visitor_votes(visitor) >= limit("votes_per_visitor"):
        return token, test["id"], None, "", _bound_message()
    pair = votes.pending(test["id"], visitor)
    if pair is None:
        return (token, test["id"], None, "", f"{note} You have voted on all {total} pairs of test #{test['id']}: "
                                            "see its results below.".strip())
    try:
        drawn = ab_ahead.images(test, pair)
    except Exception as err:  # the sampler process failed (its own log has the traceback)
        raise gr.Error(f"The sampler could not draw this pair: {type(err).__name__}: {str(err)[:200]}") from None
    if pair["scores"] is None:
        votes.set_scores(pair["id"], drawn["scores"])
    votes.mark_shown(pair["id"], visitor)
    following = votes.pending(test["id"], visitor, ahead=1)
    if following is not None:
        ab_ahead.prepare(test, following)
    return token, test["id"], pair["id"], pair_html(pair, drawn, voted + 1, total), note


def _bound_message() -> str:
    bound = limit("votes_per_visitor")
    return f"You have cast the {bound:,} votes a visitor may (G2RPO_MAX_VOTES_PER_VISITOR): thank you."


def _test(test_id) -> dict:
    from jobs import votes

    try:
        return votes.get_test(int(test_id))
    except (TypeError, ValueError, OverflowError, votes.VoteError):
        raise gr.Error(f"No blind test {str(test_id)[:30]}.") from None


def cast(choice: str, test_id, pair_id, token, authorized: bool, profile) -> tuple:
    """Store the vote on the pair on screen, then show the next pair. A vote that cannot count (no
    such pair, not shown to this visitor, already voted) is refused and stores nothing; on a pair
    the visitor voted on already, the page gets their next pair with the refusal (a double click,
    or a page that missed the answer to its vote, is not left stuck)."""
    from jobs import votes

    visitor, voter, token = who(token, authorized, profile)
    if votes.visitor_votes(visitor) >= limit("votes_per_visitor"):
        raise gr.Error(_bound_message() + " This vote was not stored.")
    try:
        votes.vote(pair_id, visitor, choice, voter)
    except votes.AlreadyVoted as err:  # the page still shows a pair it voted on: bring it the next one
        return show(test_id, token, authorized, profile, note=f"⚠️ {redact(str(err))} Your next pair is below.")
    except votes.VoteError as err:
        raise page_error(redact(str(err))) from None
    return show(test_id, token, authorized, profile, note=f"Vote stored ({choice}).")


def test_choices() -> list[tuple[str, int]]:
    from jobs import votes

    return [(f"#{t['id']}: {t['label_a']} vs {t['label_b']} · {t['prompt_set']} prompts · "
             f"{len(t['prompts']) * t['seeds']} pairs · {t['votes']} votes", t["id"]) for t in votes.list_tests()]


def results(test_id) -> str:
    from jobs import votes

    if test_id in (None, ""):
        raise gr.Error("Start a new test or choose one first.")
    test = _test(test_id)
    return ab_results.results(test, votes.votes([test["id"]]))


def votes_csv(profile: gr.OAuthProfile | None, authorized: bool, test_id) -> str:
    """The test's votes as CSV (voters' names in it: logging in is needed where the app has a login)."""
    from jobs import votes

    auth.guard(authorized, profile)
    if test_id in (None, ""):
        raise gr.Error("Start a new test or choose one first.")
    test = _test(test_id)
    VOTES_CSV.mkdir(parents=True, exist_ok=True)
    path = VOTES_CSV / f"blind-test-{test['id']}.csv"
    path.write_text(votes.votes_csv([test["id"]]), encoding="utf-8")
    return str(path)


def _browser_secret() -> str:
    """The key the visitor token is stored under in the browser: kept in the data folder, so an
    app restart still reads the tokens it gave (and visitors resume their tests)."""
    from jobs import settings

    path = settings.data_dir() / "browser-state.key"
    try:
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(secrets.token_hex(16))
    except FileExistsError:
        pass
    return path.read_text().strip()


def _on_page(fn):
    """A page handler: its outputs, or on a problem the pair cleared and the message said."""
    checked = user_errors(fn)

    @functools.wraps(fn)  # Gradio reads fn's signature (the OAuth profile it passes)
    def handler(*args, **kwargs):
        try:
            return checked(*args, **kwargs)
        except gr.Error as err:
            return gr.skip(), gr.skip(), None, "", f"⚠️ {getattr(err, 'message', None) or err}"
    return handler


def _start(model_a, model_b, prompt_set, own, seeds, token, authorized: bool, profile: gr.OAuthProfile | None):
    _, voter, token = who(token, authorized, profile)
    test_id = new_test(model_a, model_b, prompt_set, own, seeds, created_by=voter)
    return show(test_id, token, authorized, profile, note=f"Test #{test_id} started.")


def _resume(test_id, token, authorized: bool, profile: gr.OAuthProfile | None):
    return show(test_id, token, authorized, profile)


def _voter(choice: str):
    def vote(test_id, pair_id, token, authorized: bool, profile: gr.OAuthProfile | None):
        return cast(choice, test_id, pair_id, token, authorized, profile)
    vote.__name__ = f"vote_{choice}"
    return vote


def build(authorized: gr.State) -> dict:
    with gr.Accordion("Blind A/B test", open=False, elem_id="ab-test"):
        gr.Markdown(INTRO)
        with gr.Row():
            model_a = gr.Dropdown(model_choice.choices(), value=None, label="Model A: a run, a LoRA folder, a Hub id "
                                  "or base", allow_custom_value=True, elem_id="ab-model-a", scale=2)
            model_b = gr.Dropdown(model_choice.choices(), value=model_choice.BASE, label="Model B",
                                  allow_custom_value=True, elem_id="ab-model-b", scale=2)
            seeds = gr.Number(1, label="Seeds per prompt", minimum=1, maximum=MAX_SEEDS, precision=0,
                              elem_id="ab-seeds", scale=1)
        prompt_set = gr.Radio(list(PROMPT_SETS), value="held-out prompts", label="Prompts", elem_id="ab-prompt-set")
        own = gr.Textbox(label="Your prompts (one per line)", lines=3, visible=False, elem_id="ab-own")
        with gr.Row():
            start = gr.Button("Start a new test", variant="primary", elem_id="ab-start", scale=1)
            tests = gr.Dropdown(test_choices(), value=None, label="or continue a test", elem_id="ab-tests", scale=3)
            resume = gr.Button("Continue", elem_id="ab-continue", scale=0, min_width=100)
        message = gr.Markdown(elem_id="ab-message")
        pair = gr.HTML(elem_id="ab-pair")
        with gr.Row():
            buttons = {choice: gr.Button(text, elem_id=f"ab-{choice}") for choice, text in
                       (("left", "◀ Left is better (← or 1)"), ("same", "About the same (↓ or 0)"),
                        ("right", "Right is better (→ or 2) ▶"))}
        with gr.Accordion("Results", open=False, elem_id="ab-results-box"):
            gr.Markdown("Look at them after voting: a tally that moves with each vote tells which side was which.")
            with gr.Row():
                show_results = gr.Button("Show the results", elem_id="ab-show-results")
                download = gr.Button("Download the votes (CSV)", elem_id="ab-download")
            table = gr.Markdown(elem_id="ab-results")
            csv_file = gr.File(label="Votes (CSV)", elem_id="ab-csv")
    token = gr.BrowserState(None, storage_key="g2rpo-visitor", secret=_browser_secret())
    test, shown = gr.State(None), gr.State(None)

    outputs = [token, test, shown, pair, message]
    prompt_set.change(lambda p: gr.update(visible=PROMPT_SETS.get(p) == "own"), prompt_set, own,
                      api_visibility="private")
    for dropdown in (model_a, model_b):  # runs checkpointed since the page loaded
        dropdown.focus(lambda: gr.update(choices=model_choice.choices()), None, dropdown, api_visibility="private")
    tests.focus(lambda: gr.update(choices=test_choices()), None, tests, api_visibility="private")
    start.click(_on_page(_start), [model_a, model_b, prompt_set, own, seeds, token, authorized], outputs,
                api_visibility="private", concurrency_id="sampler").then(
        lambda t: gr.update(choices=test_choices(), value=t), test, tests, api_visibility="private")
    for trigger in (tests.input, resume.click):
        trigger(_on_page(_resume), [tests, token, authorized], outputs, api_visibility="private",
                concurrency_id="sampler")
    for choice, button in buttons.items():
        button.click(_on_page(_voter(choice)), [test, shown, token, authorized], outputs, api_visibility="private",
                     concurrency_id="sampler")
    show_results.click(in_message_line(results, 1, clear=True), test, [table, message], api_visibility="private")
    download.click(in_message_line(votes_csv, 1, clear=True), [authorized, test], [csv_file, message],
                   api_visibility="private")
    return {"ab_tests": tests}
