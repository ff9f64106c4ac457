"""The typed stack config as a whole: defaults, error lines naming the full key, cross-key rules."""

from __future__ import annotations

import pytest

from components.config import is_pinned_image, parse_stack_config
from tests.config.cases import VALID, errors_of, with_


def test_minimal_config_gets_safe_defaults():
    config = parse_stack_config("dev", VALID)
    blue = config.clusters["blue"]
    assert blue.connector.replicas == 2
    assert ":" in blue.connector.image and not blue.connector.image.endswith(":latest")
    assert {t.key for t in blue.tolerated_taints} == {"nvidia.com/gpu", "amd.com/gpu", "CriticalAddonsOnly"}
    assert config.secrets.delivery == "direct"
    assert config.edge.manage_zone is False
    assert config.active_cluster == "blue"
    assert config.secret_prefix == "llm-edge/dev"
    assert config.origin_service("blue") == "http://gateway.llm-edge.svc.cluster.local:8080"


def test_error_names_the_full_key_the_value_and_what_is_allowed():
    [line] = errors_of(with_("clusters.blue.connector.replicas", 1))
    assert line.startswith("llm-edge:clusters.blue.connector.replicas:")
    assert "greater than or equal to 2" in line and "(got 1)" in line


def test_several_errors_are_reported_together():
    raw = with_("clusters.blue.connector.replicas", 0)
    raw = with_("secrets.delivery", "vault", raw)
    raw = with_("cloudflare.accountId", "nope", raw)
    lines = errors_of(raw)
    keys = sorted(line.split(":")[1] for line in lines)
    assert keys == ["cloudflare.accountId", "clusters.blue.connector.replicas", "secrets.delivery"]
    assert any("'direct' or 'external-secrets'" in line for line in lines)


def test_unknown_keys_are_errors_not_silently_ignored():
    lines = errors_of(with_("clusters.blue.conector", {"replicas": 3}))
    assert lines == ["llm-edge:clusters.blue.conector: is not a known setting (check the spelling)"]
    [line] = errors_of({**VALID, "publicHostnme": "x.example.com"})
    assert line.startswith("llm-edge:publicHostnme: is not a known setting")


@pytest.mark.parametrize("image", ["cloudflare/cloudflared", "cloudflare/cloudflared:latest", "bad image:1"])
def test_unpinned_images_are_rejected(image):
    [line] = errors_of(with_("clusters.blue.connector.image", image))
    assert line.startswith("llm-edge:clusters.blue.connector.image:") and "pinned" in line


@pytest.mark.parametrize(
    "image",
    ["cloudflare/cloudflared:2025.11.1", "ghcr.io/acme/gw:1.2@sha256:" + "a" * 64, "registry:5000/x/y:v1", "x@sha256:" + "b" * 64],
)
def test_pinned_images(image):
    assert is_pinned_image(image)


def test_images_pinned_by_digest_alone_are_accepted_in_config():
    digest = "vllm/vllm-openai@sha256:" + "e" * 64
    config = parse_stack_config("dev", with_("models", {"m": {"huggingFaceId": "org/m", "image": digest}}))
    assert config.models["m"].image == digest


def test_cluster_needs_exactly_one_way_in():
    [line] = errors_of(with_("clusters.blue", {"namespace": "x"}))
    assert line.startswith("llm-edge:clusters.blue:") and "exactly one of 'context'" in line
    [line] = errors_of(with_("clusters.blue", {"context": "a", "kubeconfigConfigKey": "kubeconfigBlue"}))
    assert "exactly one" in line


def test_cross_key_rules():
    lines = errors_of(with_("publicHostname", "llm.other.org"))
    assert lines == ["llm-edge:publicHostname: must be a name inside the zone example.com (got \"llm.other.org\")"]
    [line] = errors_of(with_("secrets.delivery", "external-secrets"))
    assert line.startswith("llm-edge:secrets.region: is required")
    [line] = errors_of(with_("edge.createZone", True))
    assert line.startswith("llm-edge:edge.createZone:")


def test_active_cluster_must_exist_and_is_required_with_several():
    two = with_("clusters.green", {"context": "green-admin"})
    [line] = errors_of(two)
    assert line.startswith("llm-edge:traffic.active: is required")
    [line] = errors_of(with_("traffic", {"active": "purple"}, two))
    assert line.startswith("llm-edge:traffic.active: names no declared cluster")


@pytest.mark.parametrize("days,ok", [(0, True), (7, True), (30, True), (3, False), (31, False)])
def test_recovery_window_follows_aws_limits(days, ok):
    raw = with_("secrets.recoveryWindowDays", days)
    if ok:
        assert parse_stack_config("dev", raw).secrets.recovery_window_days == days
    else:
        [line] = errors_of(raw)
        assert line.startswith("llm-edge:secrets.recoveryWindowDays: must be 0")


def test_missing_required_keys():
    lines = errors_of({"clusters": VALID["clusters"]})
    assert sorted(lines) == ["llm-edge:cloudflare: is required", "llm-edge:publicHostname: is required"]
