"""The field types configs are made of, and the one-line message each problem gets.

Pydantic checks types, bounds, finite floats and unknown keys; this file says how: strict types
(2.5 is not an int, "yes" is not a bool), named bounds (`at_least(2, "a group needs at least 2
members")`), environment-raisable limits (`limited("group_size")`, engine/config/limits.py), and
`ConfigError`, which turns pydantic's errors into "algorithm.group_size: expected int, got 2.5".
No torch here: the UI validates with it.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Callable

from pydantic import AfterValidator, BeforeValidator, Strict, StringConstraints, ValidationError
from pydantic_core import PydanticCustomError

from engine.config.limits import SEED_MAX, excerpt, too_large

MAX_PROBLEMS = 20  # listed in one error; the rest are counted
MAX_PROBLEM_CHARS = 400


class ConfigError(ValueError):
    """An invalid configuration; the message lists every problem found, `problems` one each
    ("algorithm.granularities: Lambda must not be empty"), so a form can show each at its field."""

    def __init__(self, message: str, problems: list[str] | None = None):
        problems = [_cut(p) for p in (problems or [message])]
        if len(problems) > MAX_PROBLEMS:
            problems = problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS:,} more problems"]
        if len(problems) > 1 or problems[0] != message:
            message = _cut(message.split("\n")[0], 200) + "\n  - " + "\n  - ".join(problems)
        super().__init__(message)
        self.problems = problems

    def by_field(self) -> dict[str, list[str]]:
        """Problems keyed by the config path they name ("train.learning_rate", "prompts"; list
        indices dropped), or "" when a problem names none."""
        fields: dict[str, list[str]] = {}
        for problem in self.problems:
            match = re.match(r"([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*): (.*)", problem, re.S)
            key, text = (re.sub(r"\[\d+\]", "", match[1]), match[2]) if match else ("", problem)
            fields.setdefault(key, []).append(text)
        return fields

    @classmethod
    def listing(cls, problems: list[str]) -> "ConfigError":
        return cls("invalid config:", problems)


def _cut(text: str, chars: int = MAX_PROBLEM_CHARS) -> str:
    return text if len(text) <= chars else text[:chars] + "…"


# ---------------------------------------------------------------- types


def rule(ok: Callable[[Any], bool], message: str):
    """A check with its own message; "got <value>" is appended unless the message places {got}."""
    template = message if "{got}" in message else message + ", got {got}"

    def check(value):
        if not ok(value):
            raise PydanticCustomError("rule", "{text}", {"text": template.format(got=excerpt(value))})
        return value
    return AfterValidator(check)


def at_least(low, message: str | None = None):
    return rule(lambda v: v >= low, message or f"must be >= {low}")


def above(low, message: str | None = None):
    return rule(lambda v: v > low, message or f"must be > {low}")


def at_most(high, why: str):
    """The finite upper bound every float setting declares, with the reason for it (a float
    without one lets 1e308 through to the trainer, which then fails mid-run)."""
    return rule(lambda v: v <= high, f"must be at most {high:g} ({why})")


def one_of(choices, what: str):
    return rule(lambda v: v in choices, f"unknown {what} {{got}}; known: {', '.join(choices)}")


def limited(name: str, measure: Callable[[Any], int] = lambda v: v):
    """An upper bound from engine/config/limits.py (raisable by its environment variable); `measure`
    gives the size of a value (len for lists and strings)."""
    def check(value):
        message = too_large(name, measure(value))
        if message:
            raise PydanticCustomError("limit", "{message}", {"message": message})
        return value
    return AfterValidator(check)


def _no_bool(value):  # pydantic's lax float takes True as 1.0; a config never means that
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "expected float")
    return value


Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Float = Annotated[float, BeforeValidator(_no_bool)]  # ints and YAML 1.1's "1e-3" strings convert; finite only
Name = Annotated[str, Strict(), StringConstraints(max_length=200)]  # model, reward, module names
Source = Annotated[str, Strict(), StringConstraints(max_length=1_000)]  # a path or a hub id
Prompt = Annotated[str, Strict(), limited("prompt_chars", len)]
Seed = Annotated[Int, rule(lambda v: 0 <= v <= SEED_MAX, f"seeds are 0 .. {SEED_MAX:,} (32-bit)")]


def non_empty(message: str):
    return rule(lambda v: len(v) > 0, message)


# ---------------------------------------------------------------- pydantic's errors as our messages

TYPES = {"int_type": "expected int", "int_from_float": "expected int", "float_type": "expected float",
         "float_parsing": "expected float", "bool_type": "expected bool", "bool_parsing": "expected bool",
         "string_type": "expected str", "list_type": "expected a list", "dataclass_type": "expected a mapping",
         "dict_type": "expected a mapping", "finite_number": "must be a finite number"}


def problems_of(err: ValidationError, known: Callable[[tuple], list[str]]) -> list[str]:
    """One line per problem, "path: what, got value"; unknown keys are listed per section with the
    keys that section knows (`known(loc)`)."""
    lines, unknown = [], {}
    for e in err.errors():
        path = _path(e["loc"])
        if e["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            unknown.setdefault(tuple(e["loc"][:-1]), []).append(path[:80])
            continue
        ctx = e.get("ctx") or {}
        if e["type"] in ("rule", "limit"):
            text = e["msg"]
        elif e["type"] == "literal_error":
            text = f"{ctx['expected']}, got {excerpt(e['input'])}"
        elif e["type"] == "string_too_long":
            text = f"at most {ctx['max_length']:,} characters, got {len(e['input']):,}"
        elif e["type"] == "missing":
            text = "required"
        else:
            text = f"{TYPES.get(e['type'], e['msg'])}, got {excerpt(e['input'])}"
        lines.append(f"{path or 'config'}: {text}")
    for parent, paths in unknown.items():
        lines.insert(0, f"unknown key(s) {', '.join(paths)}; known: {', '.join(known(parent))}")
    return lines


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
