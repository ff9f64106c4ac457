"""Shared fixtures: each stack variant runs the real program under mocks once per test session."""

from __future__ import annotations

import json
from typing import Any

import pytest

from offline.engine import StackRun, run_stack

_runs: dict[str, StackRun] = {}


def stack_run(stack: str, overrides: dict[str, Any] | None = None) -> StackRun:
    """Run `Pulumi.<stack>.yaml` (with whole top-level keys replaced) once; later calls share it."""
    key = stack + json.dumps(overrides or {}, sort_keys=True)
    if key not in _runs:
        _runs[key] = run_stack(stack, overrides)
    return _runs[key]


@pytest.fixture(scope="session")
def dev() -> StackRun:
    return stack_run("dev")
