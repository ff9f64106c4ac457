"""Hostname routes and external backends: tunnel ingress rules and DNS records straight to one model or backend."""

from __future__ import annotations

import pytest

from tests.conftest import stack_run
from tests.helpers import DNS_RECORD, TUNNEL_CONFIG, ingress_rules, objects, plain


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


@pytest.mark.parametrize("keep_alive", [90, 300])
def test_every_vllm_origin_keeps_idle_connections_longer_than_the_tunnel(keep_alive):
    # cloudflared reuses an idle origin connection for keepAliveTimeout; an origin that closes
    # sooner (uvicorn's default is 5 s) races it and clients get 502s.
    run = stack_run("prod", {"tunnel": {"keepAliveTimeoutSeconds": keep_alive}})
    checked = 0
    for cluster in ("blue", "green"):
        tunnel = plain(run.one(TUNNEL_CONFIG, f"tunnel-{cluster}-config"))["config"]["originRequest"]
        for deployment in objects(run, cluster, "Deployment"):
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                if container["name"] != "vllm":
                    continue
                env = {e["name"]: e.get("value") for e in container["env"]}
                assert int(env["VLLM_HTTP_TIMEOUT_KEEP_ALIVE"]) > tunnel["keepAliveTimeout"] == keep_alive
                checked += 1
    assert checked == 4
