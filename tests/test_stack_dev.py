"""Layer 3: the dev stack end to end, as `synth` renders it."""

from __future__ import annotations

import json

from tests.helpers import (
    AWS_SECRET,
    AWS_SECRET_VERSION,
    DNS_RECORD,
    TUNNEL,
    TUNNEL_CONFIG,
    ingress_rules,
    plain,
    pod_spec,
    objects,
    secret_marked,
)


def test_remotely_managed_tunnel_with_random_secret(dev):
    [tunnel] = dev.of_type(TUNNEL)
    inputs = plain(tunnel)
    assert inputs["configSrc"] == "cloudflare"
    assert inputs["name"] == "llm-edge-dev-dev"
    assert secret_marked(tunnel.inputs["tunnelSecret"])
    [secret] = dev.of_type("random:index/randomBytes:RandomBytes")
    assert secret.inputs["length"] == 32


def test_tunnel_config_routes_each_hostname_to_the_origin_and_ends_with_catch_all(dev):
    rules = ingress_rules(dev, "tunnel-dev")
    origin = "http://gateway.llm-edge.svc.cluster.local:8080"
    assert rules[:-1] == [
        {"hostname": "dev.llm-dev.example.com", "service": origin},
        {"hostname": "llm-dev.example.com", "service": origin},
    ]
    assert rules[-1] == {"service": "http_status:404"}
    origin_request = plain(dev.one(TUNNEL_CONFIG, "tunnel-dev-config"))["config"]["originRequest"]
    assert origin_request == {"connectTimeout": 10, "keepAliveConnections": 100, "keepAliveTimeout": 90}


def test_public_and_validation_hostnames_are_proxied_cnames_to_the_tunnel(dev):
    [tunnel] = dev.of_type(TUNNEL)
    tunnel_id = dev.outputs["tunnels"]["dev"]
    records = {plain(r)["name"]: plain(r) for r in dev.of_type(DNS_RECORD)}
    assert set(records) == {"llm-dev.example.com", "dev.llm-dev.example.com"}
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


def test_endpoint_secret_tells_applications_the_public_base_url(dev):
    endpoint = json.loads(plain(dev.one(AWS_SECRET_VERSION, "vault-endpoint-value"))["secretString"])
    assert endpoint["base_url"] == "https://llm-dev.example.com/v1"
    assert dev.outputs["baseUrl"] == endpoint["base_url"]


def test_connector_deployment_is_hardened(dev):
    spec = pod_spec(dev, "cloudflared", "dev")
    [container] = spec["containers"]
    assert container["image"] == "cloudflare/cloudflared:2025.11.1"
    assert container["args"] == ["tunnel", "--no-autoupdate", "--loglevel", "info", "--metrics", "0.0.0.0:2000", "run"]
    assert container["env"] == [
        {"name": "TUNNEL_TOKEN", "valueFrom": {"secretKeyRef": {"name": "cloudflared-token", "key": "token"}}}
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/ready", "port": 2000}
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert {t["key"] for t in spec["tolerations"]} == {"nvidia.com/gpu", "amd.com/gpu", "CriticalAddonsOnly"}
    assert all(t["operator"] == "Exists" for t in spec["tolerations"])
    assert {c["topologyKey"] for c in spec["topologySpreadConstraints"]} >= {"kubernetes.io/hostname"}
    [deployment] = [o for o in objects(dev, "dev", "Deployment") if o["metadata"]["name"] == "cloudflared"]
    assert deployment["spec"]["replicas"] == 2


def test_connector_has_a_disruption_budget_selecting_its_pods(dev):
    [deployment] = [o for o in objects(dev, "dev", "Deployment") if o["metadata"]["name"] == "cloudflared"]
    [budget] = [o for o in objects(dev, "dev", "PodDisruptionBudget") if o["metadata"]["name"] == "cloudflared"]
    selector = budget["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert budget["spec"]["maxUnavailable"] == 1


def test_token_reaches_the_cluster_as_a_secret_only(dev):
    [secret] = [o for o in objects(dev, "dev", "Secret") if o["metadata"]["name"] == "cloudflared-token"]
    assert secret["stringData"] == {"token": "[secret]"}


def test_every_kubernetes_object_goes_through_the_cluster_provider(dev):
    kube = [r for r in dev.resources if r.custom and r.type.startswith("kubernetes:")]
    assert kube and {dev.name_of(r.provider_urn) for r in kube} == {"dev"}
    [provider] = dev.of_type("pulumi:providers:kubernetes")
    assert plain(provider)["context"] == "dev-gpu"


def test_no_zone_level_resources_when_the_stack_does_not_own_the_zone(dev):
    assert dev.of_type("cloudflare:index/zoneSetting:ZoneSetting") == []
    assert dev.of_type("cloudflare:index/zone:Zone") == []
    assert [t for t, _ in dev.invokes if t == "cloudflare:index/getZone:getZone"]
