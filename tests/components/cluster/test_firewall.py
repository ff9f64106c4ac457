"""NetworkPolicies: default deny, then one allow per hop of the request path."""

from __future__ import annotations

import pytest

from tests.conftest import stack_run
from tests.helpers import ingress_rules, objects


@pytest.fixture(scope="module")
def prod():
    return stack_run("prod")


def policies(run, cluster):
    return {o["metadata"]["name"]: o["spec"] for o in objects(run, cluster, "NetworkPolicy")}


def test_network_policies_allow_only_each_hop_of_the_request_path(prod):
    specs = policies(prod, "blue")
    assert specs["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    connector = {"app.kubernetes.io/name": "cloudflared", "app.kubernetes.io/instance": "prod-blue"}
    gateway = {"app.kubernetes.io/name": "gateway", "app.kubernetes.io/instance": "prod-blue"}
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}

    def sources(name):
        [rule] = specs[name]["ingress"]
        return rule["from"], rule["ports"]

    peers, ports = sources("allow-to-gateway")
    assert peers == [{"podSelector": {"matchLabels": connector}}] and ports == [{"port": 8080, "protocol": "TCP"}]
    peers, ports = sources("allow-metrics-to-gateway")
    assert peers == [monitoring] and ports == [{"port": 9090, "protocol": "TCP"}]
    # The 72b model has no hostname route: only the gateway reaches it.
    peers, ports = sources("allow-to-vllm-qwen-2-5-72b")
    assert peers == [{"podSelector": {"matchLabels": gateway}}, monitoring] and ports == [{"port": 8000, "protocol": "TCP"}]
    # The 8b model is published by a hostname route: the connector reaches it too.
    peers, _ = sources("allow-to-vllm-llama-3-1-8b")
    assert {"podSelector": {"matchLabels": connector}} in peers
    peers, ports = sources("allow-metrics-to-cloudflared")
    assert peers == [monitoring] and ports == [{"port": 2000, "protocol": "TCP"}]


def test_without_a_gateway_the_connector_reaches_vllm(dev):
    run = stack_run("dev", {"gateway": {"enabled": False}, "tunnel": {"originService": "http://vllm-qwen-0-5b.{namespace}.svc:8000"}})
    specs = policies(run, "dev")
    [rule] = specs["allow-to-vllm-qwen-0-5b"]["ingress"]
    connector = {"app.kubernetes.io/name": "cloudflared", "app.kubernetes.io/instance": "dev-dev"}
    assert {"podSelector": {"matchLabels": connector}} in rule["from"]
    assert "allow-to-gateway" not in specs
    assert ingress_rules(run, "tunnel-dev")[0]["service"] == "http://vllm-qwen-0-5b.llm-edge.svc:8000"
