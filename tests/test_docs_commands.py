"""Every command README.md and docs/ give still runs as written: each `python -m MODULE` (and
`python app.py`) answers --help, every --flag a documented command uses is one its --help lists,
`python -m jobs SUBCOMMAND` names a real subcommand, and every `make TARGET` is a target.

The --help calls run in this process (runpy, one torch import for all); a tiny setting of the main
commands is run by their own tests (test_cli, test_report_sweep, test_study, test_attribution)."""
import contextlib
import io
import re
import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COMMAND = re.compile(r"python (-m [\w.]+|app\.py)((?:[ \t]+(?:\\\n)?[^\s`|;)#]+)*)")


def documented() -> list[tuple[str, str, list[str]]]:
    """[(file, target, arguments)] for every python command in the Markdown."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        text = path.read_text()
        for match in COMMAND.finditer(text):
            target = match.group(1).removeprefix("-m ").strip()
            args = match.group(2).replace("\\\n", " ").split()
            found.append((str(path.relative_to(REPO)), target, args))
    return found


def run_help(target: str, extra: list[str] = ()) -> tuple[int, str]:
    """(exit code, output) of `python -m target [extra] --help`, in this process."""
    out, code = io.StringIO(), 0
    saved = sys.argv
    sys.argv = [target, *extra, "--help"]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            if target == "app.py":
                from app.server import main

                main(["--help"])
            else:
                runpy.run_module(target, run_name="__main__", alter_sys=False)
    except SystemExit as stop:
        code = stop.code or 0
    finally:
        sys.argv = saved
    return code, out.getvalue()


COMMANDS = documented()


def test_the_markdown_names_commands():
    assert len(COMMANDS) > 50 and {t for _, t, _ in COMMANDS} >= {"engine.train", "engine.evaluate", "jobs", "app.py"}


@pytest.mark.parametrize("target", sorted({t for _, t, _ in COMMANDS}))
def test_each_documented_command_answers_help_and_knows_its_flags(target):
    uses = [(where, args) for where, t, args in COMMANDS if t == target]
    if target == "jobs":  # subcommands: each has its own --help and flags
        for where, args in uses:
            words = [a for a in args if not a.startswith("-")]
            if not words:
                continue
            code, text = run_help("jobs", [words[0]])
            assert code == 0, f"{where}: python -m jobs {words[0]} --help exited {code}: {text[-300:]}"
            unknown = {a.split("=")[0] for a in args if a.startswith("--")} - set(re.findall(r"--[\w-]+", text))
            assert not unknown, f"{where}: python -m jobs {' '.join(args)} uses {unknown}, not in its --help"
        return
    code, text = run_help(target)
    assert code == 0, f"python -m {target} --help exited {code}: {text[-300:]}"
    flags = set(re.findall(r"--[\w-]+", text))
    for where, args in uses:
        unknown = {a.split("=")[0] for a in args if a.startswith("--")} - flags
        assert not unknown, f"{where}: `python -m {target} {' '.join(args)}` uses {unknown}, not in its --help"


def test_every_documented_make_target_exists():
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
    for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        for target in re.findall(r"`make ([\w-]+)", path.read_text()):
            assert target in targets, f"{path.name}: make {target} is not a Makefile target"
