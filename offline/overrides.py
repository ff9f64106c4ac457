"""`synth --set KEY=VALUE`: render a variant of a stack without editing its file.

Keys and values follow `pulumi config set --path`, so a runbook step can be rendered offline with
the same words it is applied with: `traffic.weights.green=10` sets one value inside the
`llm-edge:traffic` object; "true"/"false" become booleans, integers become numbers, anything else
stays a string. The result replaces whole top-level keys, as `run_stack` expects.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from components.config import PROJECT
from offline.engine import ROOT, stack_file_config

_SEGMENT = re.compile(r"([^.\[\]]+)|\[([0-9]+)\]")


class OverrideError(ValueError):
    """A `--set` the tool cannot apply; the message says what to write instead."""


def parse_value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    return text


def split_path(key: str) -> list[str | int]:
    """`traffic.weights.blue` -> ["traffic", "weights", "blue"]; `routes[0].hostname` -> ["routes", 0, "hostname"]."""
    parts: list[str | int] = []
    position = 0
    for match in _SEGMENT.finditer(key):
        gap = key[position:match.start()]
        if gap not in ("", "."):
            break
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    if position != len(key) or not parts or not isinstance(parts[0], str):
        raise OverrideError(f"--set {key!r}: not a config path; write it as for pulumi config set --path, e.g. traffic.active")
    return parts


def _assign(node: Any, path: list[str | int], value: Any, key: str) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        # As `pulumi config set --path` does (its docs build a list with names[0], names[1], ...:
        # https://www.pulumi.com/docs/iac/concepts/config/#structured-configuration): a missing
        # list is created and the index one past the end appends.
        items = list(node) if isinstance(node, list) else [] if node is None else None
        if items is None:
            raise OverrideError(f"--set {key!r}: index [{head}] is inside a value that is not a list")
        if head > len(items):
            raise OverrideError(f"--set {key!r}: index {head} is past the end of the list (it has {len(items)} items)")
        if head == len(items):
            items.append(None)
        items[head] = _assign(items[head], rest, value, key)
        return items
    mapping = dict(node) if isinstance(node, dict) else {} if node is None else None
    if mapping is None:
        raise OverrideError(f"--set {key!r}: {head!r} is inside a value that is not a map")
    mapping[head] = _assign(mapping.get(head), rest, value, key)
    return mapping


def stack_overrides(stack: str, assignments: list[str], root: Path = ROOT) -> dict[str, Any]:
    """Top-level config values of `Pulumi.<stack>.yaml` with each `KEY=VALUE` applied in order."""
    # The raw file, so that `secure:` values keep their marking when a key around them is changed.
    stack_config = stack_file_config(stack, root)
    overrides: dict[str, Any] = {}
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        if not separator:
            raise OverrideError(f"--set {assignment!r}: expected KEY=VALUE, e.g. traffic.active=green")
        key = key.removeprefix(f"{PROJECT}:")
        if ":" in key.split(".", 1)[0]:
            raise OverrideError(f"--set {assignment!r}: only {PROJECT}: keys can be set here; edit the stack file for others")
        top, *rest = split_path(key)
        assert isinstance(top, str), "split_path rejects a path that starts with an index"
        current = overrides[top] if top in overrides else copy.deepcopy(stack_config.get(f"{PROJECT}:{top}"))
        overrides[top] = _assign(current, rest, parse_value(text), key)
    return overrides
