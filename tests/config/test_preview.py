"""Config of pull-request previews: pr-<N> derived from dev's config, and its mistakes named."""

from __future__ import annotations

import pytest
import yaml

from components.config import ConfigError, parse_stack_config
from offline.engine import ROOT, load_stack_file
from tests.conftest import stack_run
from tests.variants import PREVIEW_OVERRIDES


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
    raw = dev_raw()
    # pr-9.preview.example.com is two labels below the zone: its certificate needs Advanced Certificate Manager.
    raw["cloudflare"] = {**raw["cloudflare"], "addOns": ["advancedCertificateManager"]}
    config = parse_stack_config("review", {**raw, "preview": {"enabled": True, "number": 9, "domain": "preview.example.com"}})
    assert config.public_hostname == "pr-9.preview.example.com"


@pytest.mark.parametrize(
    "stack,preview,expected",
    [
        ("pr-12", {"number": 13}, "llm-edge:preview.number: must match the stack name pr-12 (got 13)"),
        ("review", {"enabled": True}, "llm-edge:preview.number: is required with preview.enabled: true"),
        ("pr-1", {"domain": "other.org"}, "llm-edge:preview.domain: must be the zone example.com or a name inside it"),
        ("pr-1", {"gatewayImage": "ghcr.io/x/gateway:latest"},
         "llm-edge:preview.gatewayImage: image 'ghcr.io/x/gateway:latest' is not pinned"),
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
