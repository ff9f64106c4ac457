"""No refactoring replaces a real resource: every variant registers exactly the URNs of the snapshot."""

from __future__ import annotations

import pytest

from tests.conftest import stack_run
from tests.stacks import urn_snapshot
from tests.variants import VARIANTS

SNAPSHOT = urn_snapshot.load()


@pytest.mark.parametrize("variant,stack,overrides", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_every_variant_registers_the_snapshots_urns(variant, stack, overrides):
    assert variant in SNAPSHOT["variants"], f"variant {variant} is not in urns.json: run python -m tests.stacks.urn_snapshot"
    expected = set(SNAPSHOT["variants"][variant])
    registered = set(urn_snapshot.registered_urns(stack_run(stack, overrides)))
    added, removed = sorted(registered - expected), sorted(expected - registered)
    assert not (added or removed), (
        f"{variant}: URNs changed, so `pulumi up` would delete and re-create these resources.\n"
        + "".join(f"  new:  {urn}\n" for urn in added)
        + "".join(f"  gone: {urn}\n" for urn in removed)
        + "A moved file changes no URN; a renamed resource, component, type token or parent does. If the rename "
        "is deliberate, add a pulumi.Alias to the old URN, note it under `renames` in tests/stacks/urns.json and "
        "run python -m tests.stacks.urn_snapshot."
    )


def test_every_noted_rename_carries_an_alias_to_its_old_urn():
    runs = {variant: stack_run(stack, overrides) for variant, stack, overrides in VARIANTS}
    for rename in SNAPSHOT["renames"]:
        assert set(rename) >= {"old", "new", "why"}, f"a rename needs old, new and why: {rename}"
        carriers = [r for run in runs.values() for r in run.resources if r.urn == rename["new"]]
        assert carriers, f"renamed resource {rename['new']} is registered by no variant"
        assert all(r.options.get("aliases") for r in carriers), f"{rename['new']} has no alias to {rename['old']}"

