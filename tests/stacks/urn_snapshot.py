"""The URN snapshot: every (type, name, parent chain) each stack variant registers.

A URN is how Pulumi matches a resource in the program to the one in its state: a moved file
changes none, a renamed resource or component (or a changed type token or parent) changes it,
and `pulumi up` then deletes the old resource and creates a new one (a new tunnel, an emptied
model cache, new client keys). `test_urns.py` compares every variant with `urns.json`.

A deliberate rename: give the resource `pulumi.Alias(...)` naming its old URN, add an entry under
`renames` in urns.json (old URN, new URN, why), and rewrite the snapshot with
`python -m tests.stacks.urn_snapshot` (it keeps the renames).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("urns.json")


def load() -> dict[str, Any]:
    return json.loads(SNAPSHOT.read_text())


def registered_urns(run) -> list[str]:
    return sorted(resource.urn for resource in run.resources)


def write(urns_by_variant: dict[str, list[str]]) -> None:
    previous = load() if SNAPSHOT.exists() else {"renames": []}
    document = {
        "about": __doc__.split("\n\n")[0].replace("\n", " "),
        "renames": previous.get("renames", []),
        "variants": urns_by_variant,
    }
    SNAPSHOT.write_text(json.dumps(document, indent=1) + "\n")


def main() -> int:
    from offline.engine import run_stack
    from tests.variants import VARIANTS

    urns = {variant: registered_urns(run_stack(stack, overrides)) for variant, stack, overrides in VARIANTS}
    write(urns)
    print(f"wrote {SNAPSHOT} ({sum(len(v) for v in urns.values())} URNs in {len(urns)} variants)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
