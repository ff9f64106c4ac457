"""The pr-123 stack as the pr-stack workflow makes it: disposable, no GPUs, no zone resources, dev's models."""

from __future__ import annotations

import pytest

from components.config import DISPOSABLE_LABEL, PULL_REQUEST_LABEL
from offline.render import kubernetes_objects
from policies.kube import gpu_requests, pod_spec
from policies.zone import ZONE_LEVEL_TYPES
from tests.conftest import stack_run
from tests.helpers import AWS_SECRET, DNS_RECORD, TUNNEL, plain
from tests.variants import PREVIEW_OVERRIDES

PR_IMAGE = PREVIEW_OVERRIDES["preview"]["gatewayImage"]


@pytest.fixture(scope="module")
def preview():
    return stack_run("pr-123", PREVIEW_OVERRIDES)


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
    assert plain(tunnel)["name"].startswith("llm-edge-pr-123-dev-")
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
