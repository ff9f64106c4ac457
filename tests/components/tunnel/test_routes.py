"""Hostname routes and external backends: tunnel ingress rules and DNS records straight to one model or backend."""

from __future__ import annotations

import pytest

from tests.conftest import stack_run
from tests.helpers import DNS_RECORD, ingress_rules, plain


@pytest.fixture(scope="module")
def prod():
    return stack_run("prod")


def test_external_backend_and_hostname_route_become_tunnel_rules_and_dns(prod):
    for cluster in ("blue", "green"):
        rules = ingress_rules(prod, f"tunnel-{cluster}")
        hostnames = [r.get("hostname") for r in rules]
        assert hostnames == [f"{cluster}.llm.example.com", "llm.example.com", "llama-8b.example.com", None]
        assert rules[2]["service"] == "http://vllm-llama-3-1-8b.llm-edge.svc.cluster.local:8000"
        assert rules[-1] == {"service": "http_status:404"}
    records = {plain(r)["name"]: plain(r) for r in prod.of_type(DNS_RECORD)}
    assert records["llama-8b.example.com"]["proxied"] is True
    assert records["llama-8b.example.com"]["content"] == f"{prod.outputs['tunnels']['blue']}.cfargotunnel.com"
