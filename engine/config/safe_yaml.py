"""YAML that someone else wrote (a config file, a `--set` value, a sweep plan), read within bounds.

`yaml.safe_load` builds Python objects for whatever it is given. Two kinds of small input make that
expensive: plain size, and aliases. Nine levels of nine `*alias`es fit in 2 KB and stand for 9^9
(387 million) values; the loader shares them, but the first thing that walks the result (a
validation message that quotes it, a copy, a JSON dump) expands them all and runs for minutes.

So, before any object is built:
- the text may hold at most G2RPO_MAX_CONFIG_MB megabytes (default 16; a file is read no further);
- a first pass over the parser's events counts the nodes the document stands for, each alias
  counted as the whole node it repeats, and stops as soon as the count passes
  G2RPO_MAX_CONFIG_NODES (default 1,000,000): the refusal comes in milliseconds, whatever the
  aliases would expand to. An alias to a node that holds it (a cycle) is refused too.

Every refusal is a `YamlRefused` with a one-line message that quotes nothing of the text. Syntax
errors are PyYAML's own (`yaml.YAMLError`, with the line and column). libyaml's parser is used when
PyYAML has it (about eight times faster on a large file).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from engine.config.limits import LIMITS

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MB = 2**20


class YamlRefused(ValueError):
    """YAML too large, or whose aliases stand for too many nodes; the message says which bound."""


def read_bounded(path: str | Path) -> bytes:
    """A file's bytes, at most G2RPO_MAX_CONFIG_MB of them (OSError as open() raises it)."""
    bound = _bound("config_mb") * MB
    with open(path, "rb") as f:
        data = f.read(bound + 1)  # never more: the path may be a device or a pipe that never ends
    if len(data) > bound:
        raise YamlRefused(_too_many_bytes())
    return data


def load(text: str | bytes):
    """The document's Python value (safe types only), or YamlRefused, or yaml.YAMLError."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > _bound("config_mb") * MB:
        raise YamlRefused(_too_many_bytes())
    check_nodes(text)
    return yaml.load(text, Loader=LOADER)


def check_nodes(text: str | bytes) -> int:
    """The number of nodes the document stands for, aliases expanded; YamlRefused above the bound.
    Counted on the parser's events with one counter per open list or mapping, so nothing is built."""
    limit, bound = LIMITS["config_nodes"], _bound("config_nodes")
    sizes: dict[str, int] = {}  # anchor -> nodes of the node it names
    open_nodes: list[list] = []  # [nodes so far, anchor] of each list or mapping not yet closed
    total = 0
    for event in yaml.parse(text, Loader=LOADER):
        if isinstance(event, yaml.CollectionEndEvent):
            size, anchor = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = size
            if open_nodes:
                open_nodes[-1][0] += size
            continue
        if isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for _, anchor in open_nodes):
                raise YamlRefused(f"the alias *{event.anchor[:40]} repeats a node that holds it (a cycle)")
            nodes = sizes.get(event.anchor, 1)  # an undefined alias: the loader names it below
        elif isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            nodes = 1
        else:  # stream and document starts and ends
            continue
        total += nodes
        if total > bound:
            raise YamlRefused(f"too large: at least {total:,} {limit.unit}; at most {bound:,} "
                              f"(raise the limit with {limit.env})")
        if isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append([1, event.anchor])
            continue
        if open_nodes:
            open_nodes[-1][0] += nodes
        if isinstance(event, yaml.ScalarEvent) and event.anchor is not None:
            sizes[event.anchor] = 1
    return total


def _bound(name: str) -> int:
    try:
        return LIMITS[name].value()
    except ValueError as err:  # its environment variable is not a number
        raise YamlRefused(str(err)) from None


def _too_many_bytes() -> str:
    limit = LIMITS["config_mb"]
    return f"too large: more than {limit.value():,} {limit.unit} (raise the limit with {limit.env})"
