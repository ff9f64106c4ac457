"""Every policy of the pack, in one list: the real pack (__main__.py) and the in-process runner share it."""

from __future__ import annotations

from . import availability, network, secret_handling, tunnel, workloads, zone

PACK_NAME = "llm-edge-guardrails"

POLICIES = [
    *network.POLICIES,
    *workloads.POLICIES,
    *tunnel.POLICIES,
    *zone.POLICIES,
    *secret_handling.POLICIES,
    *availability.POLICIES,
]
