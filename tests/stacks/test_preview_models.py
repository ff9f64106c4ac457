"""A pull-request preview runs no GPUs: its gateway uses the source stack's (dev's) models."""

from __future__ import annotations

import pytest
import yaml

from gateway.config import parse_config
from tests.conftest import stack_run
from tests.helpers import DNS_RECORD, ingress_rules, objects, plain


@pytest.fixture(scope="module")
def preview():
    return stack_run("pr-123")


def test_no_vllm_and_no_gpu_request(preview):
    deployments = {o["metadata"]["name"] for o in objects(preview, "dev", "Deployment")}
    assert deployments == {"cloudflared", "gateway"}
    manifests = yaml.safe_dump([o for objs in [objects(preview, "dev")] for o in objs])
    assert "nvidia.com/gpu:" not in manifests and "amd.com/gpu:" not in manifests


def test_gateway_routes_to_the_source_stacks_model_services(preview):
    [config_map] = [o for o in objects(preview, "dev", "ConfigMap") if o["metadata"]["name"] == "gateway"]
    config = parse_config(yaml.safe_load(config_map["data"]["config.yaml"]))
    assert config.models["qwen2.5-0.5b-instruct"].upstreams == ["http://vllm-qwen-0-5b.llm-edge.svc.cluster.local:8000"]
    assert config_map["metadata"]["namespace"] == "llm-edge-pr-123"


def test_vllm_key_is_the_source_stacks_read_from_aws(preview):
    lookups = [args for token, args in preview.invokes if token == "aws:secretsmanager/getSecretVersion:getSecretVersion"]
    assert lookups == [{"secretId": "llm-edge/dev/vllm-api-key"}]
    generated = [r.name for r in preview.of_type("random:index/randomPassword:RandomPassword")]
    assert generated == ["credentials-client-dev-team"]
    version = preview.one("aws:secretsmanager/secretVersion:SecretVersion", "vault-vllm-api-key-value")
    assert plain(version)["secretString"] == "offline-secret-of-llm-edge/dev/vllm-api-key"


def test_only_the_source_stack_admits_preview_gateways(dev):
    def vllm_peers(run, cluster):
        [policy] = [o for o in objects(run, cluster, "NetworkPolicy") if o["metadata"]["name"].startswith("allow-to-vllm-")][:1]
        return policy["spec"]["ingress"][0]["from"]

    preview_gateways = {
        "namespaceSelector": {"matchLabels": {"llm-edge.dev/disposable": "true"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}},
    }
    assert preview_gateways in vllm_peers(dev, "dev")
    assert preview_gateways not in vllm_peers(stack_run("prod"), "blue")
    [namespace] = objects(stack_run("pr-123"), "dev", "Namespace")
    assert namespace["metadata"]["labels"]["llm-edge.dev/disposable"] == "true"


def test_a_preview_has_only_its_own_hostname_and_pages_nobody(preview):
    assert [r.get("hostname") for r in ingress_rules(preview, "tunnel-dev")] == ["pr-123.example.com", None]
    assert [plain(r)["name"] for r in preview.of_type(DNS_RECORD)] == ["pr-123.example.com"]
    assert preview.of_type("cloudflare:index/notificationPolicy:NotificationPolicy") == []
    assert "validationUrls" not in preview.outputs
