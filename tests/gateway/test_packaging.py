"""The gateway image's dependencies: every package it installs is pinned in gateway/constraints.txt,
and the tests run on exactly those versions."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version and re.fullmatch(r"[\w.]+", version), f"{path.name}: {line!r} is not pinned with =="
            found[canonicalize_name(name)] = version
    return found


def installed_closure(names: list[str]) -> set[str]:
    """The packages these bring in, by the installed metadata, markers evaluated for this Python."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def test_requirements_agree_with_constraints():
    direct, constraints = pins(GATEWAY / "requirements.txt"), pins(GATEWAY / "constraints.txt")
    assert {name: constraints.get(name) for name in direct} == direct


def test_every_package_the_gateway_needs_is_constrained_at_the_version_tested():
    constraints = pins(GATEWAY / "constraints.txt")
    needed = installed_closure(list(pins(GATEWAY / "requirements.txt")))
    assert needed - set(constraints) == set(), "add these to gateway/constraints.txt"
    assert set(constraints) - needed == set(), "nothing needs these: remove them from gateway/constraints.txt"
    assert {name: metadata.version(name) for name in needed} == {name: constraints[name] for name in needed}
