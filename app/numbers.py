"""Numbers from the page and the HTTP API (run ids, seeds, counts, form fields), parsed in one place.

A number field sends a JSON number, and an API client sends whatever it likes: 2.5, 1e308, "nan",
or an integer of 400 digits. Python's float() raises OverflowError on such an integer, int() of a
string of 5,000 digits raises ValueError, and a huge int that gets through overflows SQLite later:
each was a bare "Error" on the page. Here every such value is either a number in range or a
gr.Error that names the field and the range, quoting at most a short excerpt of what was sent.
"""
from __future__ import annotations

import math

import gradio as gr

from engine.config.limits import excerpt

MAX_CHARS = 40  # a number typed as text: longer is no number any field here takes
RUN_ID_MAX = 2**63 - 1  # the database's integer (jobs.api.MAX_ID; not imported: the UI loads jobs lazily)


def number(value) -> int | float:
    """`value` as an int when it is a whole number (exactly, however large), else a finite float.
    Otherwise (text that is no number, bool, NaN, infinity, None) ValueError, saying what is
    needed: "a number", "a finite number", "a number of at most 40 characters"."""
    if isinstance(value, bool) or value is None:
        raise ValueError("a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_CHARS:
            raise ValueError(f"a number of at most {MAX_CHARS} characters")
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            raise ValueError("a number") from None
    if not isinstance(value, float):
        raise ValueError("a number")
    if not math.isfinite(value):
        raise ValueError("a finite number")
    return int(value) if value.is_integer() else value


def shown(value, chars: int = 30) -> str:
    """What was sent, short enough for a message (an int of 5,000 digits has no str())."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 100:
        return f"a number of {value.bit_length():,} bits"
    if not isinstance(value, str):
        return excerpt(value, chars)
    return value if len(value) <= chars else value[:chars] + "…"


def whole(value, low: int, high: int, what: str) -> int:
    """A whole number in low .. high, or gr.Error: "The seed must be a whole number in 0 .. 4,294,967,295, got 2.5."."""
    try:
        parsed = number(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, int) or not low <= parsed <= high:
        raise gr.Error(f"{what} must be a whole number in {low:,} .. {high:,}, got {shown(value)}.")
    return parsed


def run_id(value) -> int:
    """A run id from a field or an API call: a whole number from 1 (2.5 is no run, not run 2)."""
    try:
        parsed = number(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, int) or not 1 <= parsed <= RUN_ID_MAX:
        raise gr.Error(f"No run {shown(value)}: run ids are whole numbers from 1 to {RUN_ID_MAX:,}.")
    return parsed


def selected_id(value) -> int:
    """The run a field or an API call selected: none selected is said so; else as run_id."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise gr.Error("Select a run in the table first.")
    return run_id(value)
