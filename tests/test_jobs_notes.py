"""Notes and tags of a run: stored with it, listed by tag, bounded and refused with a message when
malformed (nothing stored), and added to an older database by migration 0004."""
import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import text

from jobs import api, db
from jobs.testing import SMALL


@pytest.fixture(autouse=True)
def data(store):
    yield


def test_notes_and_tags_are_kept_with_the_run_and_find_it():
    first = api.submit("configs/g2rpo.yaml", SMALL, name="a")
    second = api.submit("configs/g2rpo.yaml", SMALL, name="b")
    assert api.get_run(first)["notes"] == "" and api.get_run(first)["tags"] == []
    saved = api.annotate(first, notes="lr 1e-3 diverged after 40 it.", tags=["lr sweep", "baseline", "baseline", " "])
    assert saved == {"notes": "lr 1e-3 diverged after 40 it.", "tags": ["lr sweep", "baseline"]}
    api.annotate(first, tags=["baseline"])  # notes=None keeps the notes
    assert api.get_run(first)["notes"] == "lr 1e-3 diverged after 40 it."
    assert [r["id"] for r in api.list_runs(tag="baseline")] == [first]
    assert {r["id"] for r in api.list_runs()} == {first, second}


@pytest.mark.parametrize("notes, tags, message", [
    ("x" * (api.MAX_NOTES_CHARS + 1), None, "at most 4,000"),
    (None, ["<script>"], "is not a tag"),
    (None, [f"t{i}" for i in range(api.MAX_TAGS + 1)], "at most 12"),
    (None, ["a" * (api.MAX_TAG_CHARS + 1)], "is not a tag"),
    (None, "baseline", "a list of words"),
])
def test_bad_notes_or_tags_are_refused_and_nothing_is_stored(notes, tags, message):
    run_id = api.submit("configs/g2rpo.yaml", SMALL)
    api.annotate(run_id, notes="kept", tags=["kept"])
    with pytest.raises(api.JobError, match=message):
        api.annotate(run_id, notes=notes, tags=tags)
    assert (api.get_run(run_id)["notes"], api.get_run(run_id)["tags"]) == ("kept", ["kept"])
    with pytest.raises(api.JobError, match="no run"):
        api.annotate(10**6, notes="x")


def test_migration_0004_gives_older_runs_empty_notes_and_tags():
    run_id = api.submit("configs/g2rpo.yaml", SMALL)
    cfg = AlembicConfig(str(db.ALEMBIC_INI))
    with db.get_engine().begin() as c:
        cfg.attributes["connection"] = c
        command.downgrade(cfg, "0003")
        assert "notes" not in {row[1] for row in c.execute(text("PRAGMA table_info(runs)"))}
        command.upgrade(cfg, "head")
    db.dispose_all()
    assert (api.get_run(run_id)["notes"], api.get_run(run_id)["tags"]) == ("", [])


def test_the_runs_tab_saves_notes_and_refuses_bad_tags_with_a_message():
    import gradio as gr

    from app import notes

    run_id = api.submit("configs/g2rpo.yaml", SMALL)
    assert notes.load(run_id) == ("", "")
    assert notes.save(None, True, run_id, "first try", "baseline, lr sweep") == \
        f"Run #{run_id}: notes saved. Tags: baseline, lr sweep."
    assert notes.load(run_id) == ("first try", "baseline, lr sweep")
    with pytest.raises(gr.Error, match="is not a tag"):
        notes.save(None, True, run_id, "changed", "<b>")
    assert notes.load(run_id) == ("first try", "baseline, lr sweep")
