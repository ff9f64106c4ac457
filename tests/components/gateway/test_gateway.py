"""The gateway component as deployed by the stack, checked with the gateway's own config parser."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from gateway.config import parse_config, resolve_secrets
from offline.render import unwrap
from tests.conftest import stack_run
from tests.helpers import AWS_SECRET_VERSION, TUNNEL_CONFIG, ingress_rules, k8s_resource, objects, plain, pod_spec

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def prod():
    return stack_run("prod")


def rendered_config(run, cluster) -> dict:
    [config_map] = [o for o in objects(run, cluster, "ConfigMap") if o["metadata"]["name"] == "gateway"]
    return yaml.safe_load(config_map["data"]["config.yaml"])


def test_rendered_config_is_valid_for_the_gateway_and_every_env_var_it_names_is_set(prod):
    config = parse_config(rendered_config(prod, "blue"))
    assert set(config.models) == {"llama-3.1-8b-instruct", "qwen2.5-72b-instruct", "llama3.2:3b"}
    assert config.models["qwen2.5-72b-instruct"].upstreams == ["http://vllm-qwen-2-5-72b.llm-edge.svc.cluster.local:8000"]
    assert config.models["llama3.2:3b"].upstreams == ["http://10.20.0.15:11434"]
    assert config.cors_origins == ["https://app.example.com"]
    # Cloudflare cuts a reply not started within 100 s (524): the gateway answers first.
    assert config.edge_first_byte_timeout_s == 95
    [container] = pod_spec(prod, "gateway", "blue")["containers"]
    # The API and /metrics listen where the container declares them (metrics off the tunnel's port).
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(config.listen.rsplit(":", 1)[1]), "metrics": int(config.metrics_listen.rsplit(":", 1)[1])}
    assert ports["http"] != ports["metrics"]
    # Every *_env the config names is provided by the Deployment (from a Secret), so start-up succeeds.
    environ = {e["name"]: "0" * 64 for e in container["env"]}
    secrets = resolve_secrets(config, {**environ, **{k: f"{i:064x}" for i, k in enumerate(environ)}})
    assert set(secrets.client_hashes) == {"webapp", "batch-jobs"}
    assert all("valueFrom" in e for e in container["env"])


def test_cluster_gets_only_the_hash_of_each_client_key(dev):
    plaintext = plain(dev.one(AWS_SECRET_VERSION, "vault-gateway-clients-dev-team-value"))["secretString"]
    assert plaintext.startswith("sk-llmedge-")
    [secret] = [r for r in dev.resources if unwrap(r.inputs).get("kind") == "Secret"
                and unwrap(r.inputs)["metadata"]["name"] == "gateway-client-key-hashes"]
    assert plain(secret)["stringData"] == {"dev-team": hashlib.sha256(plaintext.encode()).hexdigest()}
    hashes = json.loads(plain(dev.one(AWS_SECRET_VERSION, "vault-gateway-client-key-hashes-value"))["secretString"])
    assert hashes == {"dev-team": hashlib.sha256(plaintext.encode()).hexdigest()}
    everything_in_cluster = json.dumps([unwrap(r.inputs) for r in dev.resources if r.type.startswith("kubernetes:")])
    assert plaintext not in everything_in_cluster


def test_the_tunnel_sends_public_traffic_to_the_gateway_service(dev):
    service = plain(k8s_resource(dev, "Service", "gateway", "dev"))
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}]
    pod_labels = plain(k8s_resource(dev, "Deployment", "gateway", "dev"))["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    rules = ingress_rules(dev, "tunnel-dev")
    assert {r["service"] for r in rules[:-1]} == {"http://gateway.llm-edge.svc.cluster.local:8080"}


def test_gateway_deployment_drains_and_is_hardened(prod):
    spec = pod_spec(prod, "gateway", "blue")
    [container] = spec["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    config = rendered_config(prod, "blue")
    assert spec["terminationGracePeriodSeconds"] > config["drain_grace_s"] + config["drain_delay_s"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["args"] == ["--config", "/etc/gateway/config.yaml"]
    [deployment] = [o for o in objects(prod, "blue", "Deployment") if o["metadata"]["name"] == "gateway"]
    assert len(deployment["spec"]["template"]["metadata"]["annotations"]["llm-edge.dev/config-sha256"]) == 64


def test_config_change_rolls_the_pods(dev):
    changed = stack_run("dev", {"gateway": {"replicas": 2, "clients": [{"name": "dev-team", "rpm": 60}]}})

    def checksum(run):
        deployment = plain(k8s_resource(run, "Deployment", "gateway", "dev"))
        return deployment["spec"]["template"]["metadata"]["annotations"]["llm-edge.dev/config-sha256"]

    assert checksum(changed) != checksum(dev)


def test_autoscaler_and_disruption_budget(prod):
    [hpa] = [o for o in objects(prod, "blue", "HorizontalPodAutoscaler") if o["metadata"]["name"] == "gateway"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    [budget] = [o for o in objects(prod, "blue", "PodDisruptionBudget") if o["metadata"]["name"] == "gateway"]
    assert budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "gateway"


def test_the_autoscaler_alone_owns_the_replica_count(prod):
    # A replica count in the manifest is one the stack applies again on every `pulumi up`, over the
    # autoscaler's; Kubernetes' advice is to leave it out of HPA-managed workloads.
    [deployment] = [o for o in objects(prod, "blue", "Deployment") if o["metadata"]["name"] == "gateway"]
    assert "replicas" not in deployment["spec"]
    [resource] = [r for r in prod.resources if r.name == "blue-gateway-deployment"]
    assert "ignoreChanges" not in resource.options


def test_same_client_keys_in_every_cluster(prod):
    def hashes_ref(cluster):
        [external] = [o for o in objects(prod, cluster, "ExternalSecret") if o["metadata"]["name"] == "gateway-client-key-hashes"]
        return external["spec"]["data"]

    assert hashes_ref("blue") == hashes_ref("green")


def test_gateway_keeps_idle_connections_longer_than_cloudflared(prod):
    # cloudflared must be the side that closes an idle connection, or it can send a request into
    # one the gateway is closing at that moment.
    origin_request = plain(prod.one(TUNNEL_CONFIG, "tunnel-blue-config"))["config"]["originRequest"]
    config = parse_config(rendered_config(prod, "blue"))
    assert config.client_keepalive_timeout_s > origin_request["keepAliveTimeout"]


def test_each_model_routing_reaches_the_gateway(dev):
    [model] = parse_config(rendered_config(dev, "dev")).models.values()
    assert (model.routing, model.routing_load_factor) == ("prefix_affinity", 1.25)
    with open(ROOT / "Pulumi.dev.yaml", encoding="utf-8") as handle:
        models = yaml.safe_load(handle)["config"]["llm-edge:models"]
    models["qwen-0-5b"] = {**models["qwen-0-5b"], "routing": "least_outstanding", "routingLoadFactor": 1.5}
    [model] = parse_config(rendered_config(stack_run("dev", {"models": models}), "dev")).models.values()
    assert (model.routing, model.routing_load_factor) == ("least_outstanding", 1.5)
