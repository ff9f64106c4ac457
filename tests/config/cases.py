"""Builders for the config tests: a minimal valid config, variants of it, and the error lines it gives."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.config import ConfigError, parse_stack_config

VALID: dict[str, Any] = {
    "cloudflare": {"accountId": "0123456789abcdef0123456789abcdef", "zone": "example.com"},
    "publicHostname": "llm.example.com",
    "clusters": {"blue": {"context": "blue-admin"}},
}


def errors_of(raw: dict, stack: str = "dev") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(stack, raw)
    text = str(caught.value)
    assert text.startswith("invalid stack config:")
    return [line.strip() for line in text.splitlines()[1:]]


def with_(path: str, value, base: dict = VALID) -> dict:
    raw = copy.deepcopy(base)
    node = raw
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return raw
