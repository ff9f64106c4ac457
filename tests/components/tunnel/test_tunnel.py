"""The tunnel of each cluster: remotely managed, its ingress rules, its proxied DNS records and its token."""

from __future__ import annotations

import re

from tests.conftest import stack_run
from tests.helpers import (
    AWS_SECRET,
    AWS_SECRET_VERSION,
    DNS_RECORD,
    TUNNEL,
    TUNNEL_CONFIG,
    ingress_rules,
    plain,
    secret_marked,
)


def test_remotely_managed_tunnel_with_random_secret(dev):
    [tunnel] = dev.of_type(TUNNEL)
    inputs = plain(tunnel)
    assert inputs["configSrc"] == "cloudflare"
    assert re.fullmatch(r"llm-edge-dev-dev-[0-9a-f]{6}", inputs["name"]), inputs["name"]
    assert secret_marked(tunnel.inputs["tunnelSecret"])
    [secret] = dev.of_type("random:index/randomBytes:RandomBytes")
    assert secret.inputs["length"] == 32


def test_a_replaced_tunnel_gets_a_name_of_its_own(dev):
    # Cloudflare refuses a second tunnel with a name in use (409, code 1013), and a replacement
    # creates the new tunnel before it deletes the old one: the generation suffix must change
    # with what forces the replacement (here: another account).
    [generation] = dev.of_type("random:index/randomId:RandomId")
    assert set(plain(generation)["keepers"]) == {"accountId", "configSrc", "secretBytes"}
    moved = stack_run("dev", {"cloudflare": {"accountId": "f" * 32, "zone": "example.com", "plan": "free"}})
    assert plain(moved.of_type(TUNNEL)[0])["name"] != plain(dev.of_type(TUNNEL)[0])["name"]


def test_tunnel_config_routes_each_hostname_to_the_origin_and_ends_with_catch_all(dev):
    rules = ingress_rules(dev, "tunnel-dev")
    origin = "http://gateway.llm-edge.svc.cluster.local:8080"
    assert rules[:-1] == [
        {"hostname": "dev-llm-dev.example.com", "service": origin},
        {"hostname": "llm-dev.example.com", "service": origin},
    ]
    assert rules[-1] == {"service": "http_status:404"}
    origin_request = plain(dev.one(TUNNEL_CONFIG, "tunnel-dev-config"))["config"]["originRequest"]
    assert origin_request == {"connectTimeout": 10, "keepAliveConnections": 100, "keepAliveTimeout": 90}


def test_public_and_validation_hostnames_are_proxied_cnames_to_the_tunnel(dev):
    [tunnel] = dev.of_type(TUNNEL)
    tunnel_id = dev.outputs["tunnels"]["dev"]
    records = {plain(r)["name"]: plain(r) for r in dev.of_type(DNS_RECORD)}
    assert set(records) == {"llm-dev.example.com", "dev-llm-dev.example.com"}
    for record in records.values():
        assert record["type"] == "CNAME" and record["proxied"] is True and record["ttl"] == 1
        assert record["content"] == f"{tunnel_id}.cfargotunnel.com"


def test_tunnel_token_is_stored_in_aws_as_a_secret(dev):
    secrets = {plain(s)["name"]: s for s in dev.of_type(AWS_SECRET)}
    assert set(secrets) == {
        "llm-edge/dev/tunnel-token/dev",
        "llm-edge/dev/endpoint",
        "llm-edge/dev/vllm-api-key",
        "llm-edge/dev/gateway/clients/dev-team",
        "llm-edge/dev/gateway/client-key-hashes",
    }
    assert plain(secrets["llm-edge/dev/tunnel-token/dev"])["recoveryWindowInDays"] == 7
    version = dev.one(AWS_SECRET_VERSION, "vault-tunnel-token-dev-value")
    assert secret_marked(version.inputs["secretString"])
    assert plain(version)["secretString"].startswith("offline-token-")
