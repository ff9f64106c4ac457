"""Pull-request preview stacks: `pr-<N>` derived from dev, disposable, no GPUs, no zone resources."""

from __future__ import annotations

import pytest
import yaml

from components.config import ConfigError, parse_stack_config
from components.preview import DISPOSABLE_LABEL, PULL_REQUEST_LABEL
from offline.engine import ROOT, load_stack_file
from offline.render import kubernetes_objects
from policies.kube import gpu_requests, pod_spec
from policies.zone import ZONE_LEVEL_TYPES
from tests.conftest import stack_run
from tests.helpers import AWS_SECRET, DNS_RECORD, TUNNEL, plain
from tests.variants import PREVIEW_OVERRIDES

PR_IMAGE = PREVIEW_OVERRIDES["preview"]["gatewayImage"]


def dev_raw() -> dict:
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    return {k.split(":", 1)[1]: v for k, v in document.items() if k.startswith("llm-edge:")}


@pytest.fixture(scope="module")
def preview():
    return stack_run("pr-123", PREVIEW_OVERRIDES)


def test_a_pr_stack_without_its_own_file_starts_from_dev_config():
    assert load_stack_file("pr-123") == load_stack_file("dev")


def test_derived_config():
    config = parse_stack_config("pr-42", {**dev_raw(), "preview": {"gatewayImage": "ghcr.io/x/gateway:pr-42"}})
    dev = parse_stack_config("dev", dev_raw())
    assert config.is_preview and not dev.is_preview
    assert config.preview.number == 42
    assert config.public_hostname == "pr-42.example.com"
    assert {c.namespace for c in config.clusters.values()} == {"llm-edge-pr-42"}
    assert {c.connector.replicas for c in config.clusters.values()} == {1}
    assert config.edge.manage_zone is False and config.edge.rate_limit is None and config.edge.access is None
    assert config.secrets.recovery_window_days == 0 and config.routes == []
    assert config.gateway.image == "ghcr.io/x/gateway:pr-42"
    assert config.preview.models_namespace == dev.clusters["dev"].namespace
    assert config.models == dev.models


def test_preview_domain_and_explicit_preview_config():
    config = parse_stack_config("review", {**dev_raw(), "preview": {"enabled": True, "number": 9, "domain": "preview.example.com"}})
    assert config.public_hostname == "pr-9.preview.example.com"


@pytest.mark.parametrize(
    "stack,preview,expected",
    [
        ("pr-12", {"number": 13}, "llm-edge:preview.number: must match the stack name pr-12 (got 13)"),
        ("review", {"enabled": True}, "llm-edge:preview.number: is required with preview.enabled: true"),
        ("pr-1", {"domain": "other.org"}, "llm-edge:preview.domain: must be the zone example.com or a name inside it"),
        ("pr-1", {"gatewayImage": "ghcr.io/x/gateway:latest"}, "llm-edge:preview.gatewayImage: image 'ghcr.io/x/gateway:latest' is not pinned"),
    ],
)
def test_preview_config_mistakes_are_named(stack, preview, expected):
    with pytest.raises(ConfigError) as error:
        parse_stack_config(stack, {**dev_raw(), "preview": preview})
    assert expected in str(error.value)


def test_clusters_in_different_namespaces_need_the_models_namespace():
    raw = dev_raw()
    second = {**raw["clusters"]["dev"], "namespace": "other"}
    with pytest.raises(ConfigError, match="preview.modelsNamespace: is required"):
        parse_stack_config("pr-3", {**raw, "clusters": {**raw["clusters"], "dev2": second}, "traffic": {"active": "dev"}})


def test_preview_requests_no_gpu(preview):
    checked = 0
    for resource in preview.resources:
        spec = pod_spec(resource.type, plain(resource))
        if spec is not None:
            assert gpu_requests(spec) == {}, resource.name
            checked += 1
    assert checked >= 2  # connector and gateway
    pods = [plain(r) for r in preview.resources if r.type == "kubernetes:apps/v1:Deployment"]
    assert not any(p["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name") == "vllm" for p in pods)


def test_preview_owns_no_zone_level_resources(preview):
    assert [r.name for r in preview.resources if r.type in ZONE_LEVEL_TYPES] == []


def test_preview_has_its_own_namespace_tunnel_and_hostname(preview):
    [tunnel] = preview.of_type(TUNNEL)
    assert plain(tunnel)["name"] == "llm-edge-pr-123-dev"
    assert "pr-123.example.com" in {plain(r)["name"] for r in preview.of_type(DNS_RECORD)}
    assert preview.outputs["baseUrl"] == "https://pr-123.example.com/v1"
    objects = kubernetes_objects(preview)["dev"]
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {"llm-edge-pr-123"}
    [namespace] = [o for o in objects if o["kind"] == "Namespace"]
    assert namespace["metadata"]["labels"][DISPOSABLE_LABEL] == "true"
    assert namespace["metadata"]["labels"][PULL_REQUEST_LABEL] == "123"
    assert namespace["metadata"]["annotations"]["llm-edge.dev/stack"] == "pr-123"


def test_preview_runs_one_connector_and_the_pr_gateway_image(preview):
    deployments = {o["metadata"]["name"]: o for o in kubernetes_objects(preview)["dev"] if o["kind"] == "Deployment"}
    assert deployments["cloudflared"]["spec"]["replicas"] == 1
    [gateway] = deployments["gateway"]["spec"]["template"]["spec"]["containers"]
    assert gateway["image"] == PR_IMAGE


def test_preview_secrets_are_tagged_disposable_and_deleted_at_once(preview):
    secrets = [plain(s) for s in preview.of_type(AWS_SECRET)]
    assert secrets and all(s["name"].startswith("llm-edge/pr-123/") for s in secrets)
    assert {s["recoveryWindowInDays"] for s in secrets} == {0}
    assert all(s["tags"][DISPOSABLE_LABEL] == "true" and s["tags"][PULL_REQUEST_LABEL] == "123" for s in secrets)


def test_dev_itself_is_not_disposable():
    dev = stack_run("dev")
    [namespace] = [o for o in kubernetes_objects(dev)["dev"] if o["kind"] == "Namespace"]
    assert DISPOSABLE_LABEL not in namespace["metadata"]["labels"]
