"""The users' own presets: a Launch form saved under a name, as a whole config, validated when saved.

They live in the database (table `presets`), so every page and every UI process sharing it sees
them, and they survive restarts. A name is a short label; saving under an existing name replaces it.
"""
from __future__ import annotations

import re

from sqlalchemy import delete, func, select

from jobs import db
from jobs.models import Preset, utcnow

MAX_PRESETS, MAX_NAME_CHARS = 100, 60
NAME = re.compile(r"[\w.+()-]+(?: [\w.+()-]+)*")  # words, digits, . + - ( ) and single spaces


class PresetError(ValueError):
    """A name that is no preset name, an unknown preset, or too many of them."""


def check_name(name) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise PresetError("name the preset")
    if len(name) > MAX_NAME_CHARS or not NAME.fullmatch(name):
        raise PresetError(f"{name[:MAX_NAME_CHARS]!r} is not a preset name (at most {MAX_NAME_CHARS} letters, digits, "
                          "spaces and . + - ( ) _)")
    return name


def save(name: str, config: dict) -> str:
    """Store `config` (already validated) under `name`, replacing a preset of that name."""
    name = check_name(name)
    with db.session() as s:
        preset = s.get(Preset, name)
        if preset is None:
            if s.scalar(select(func.count()).select_from(Preset)) >= MAX_PRESETS:
                raise PresetError(f"{MAX_PRESETS} presets are saved already; delete one first")
            preset = Preset(name=name, config=config)
        preset.config, preset.saved_at = config, utcnow()
        s.add(preset)
        s.commit()
    return name


def names() -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(Preset.name).order_by(Preset.name)))


def get(name: str) -> dict:
    with db.session() as s:
        preset = s.get(Preset, name) if isinstance(name, str) else None
    if preset is None:
        raise PresetError(f"no saved preset {str(name)[:MAX_NAME_CHARS]!r}")
    return preset.config


def remove(name: str) -> None:
    with db.session() as s:
        if not s.execute(delete(Preset).where(Preset.name == name)).rowcount:
            raise PresetError(f"no saved preset {str(name)[:MAX_NAME_CHARS]!r}")
        s.commit()
