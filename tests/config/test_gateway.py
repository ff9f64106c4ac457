"""Config of the gateway: its own cross-key rules."""

from __future__ import annotations

import pytest

from tests.config.cases import VALID, errors_of, with_

MODEL = {"huggingFaceId": "Qwen/Qwen2.5-0.5B-Instruct", "image": "vllm/vllm-openai:v0.11.0"}
WITH_MODEL = with_("models", {"qwen": dict(MODEL)})


@pytest.mark.parametrize("patch,key", [
    ({"replicas": 1}, "gateway.replicas"),
    ({"maxReplicas": 2, "replicas": 3}, "gateway.maxReplicas"),
    ({"corsOrigins": ["*"]}, "gateway.corsOrigins.0"),
    ({"clients": [{"name": "a", "models": ["gpt-4"]}]}, "gateway.clients[0].models"),
    ({"image": "ghcr.io/llm-edge/llm-edge-gateway:latest"}, "gateway.image"),
])
def test_gateway_errors(patch, key):
    [line] = errors_of(with_("gateway", patch, WITH_MODEL))
    assert line.startswith(f"llm-edge:{key}:"), line


def test_without_gateway_the_tunnel_needs_an_origin():
    [line] = errors_of(with_("gateway", {"enabled": False}, VALID))
    assert line.startswith("llm-edge:tunnel.originService: is required when gateway.enabled is false")


@pytest.mark.parametrize("shared,line", [
    ({"mode": "external"}, "llm-edge:gateway.sharedLimits.urlConfigKey: is required with mode: external"),
    ({"mode": "in-cluster", "urlConfigKey": "limitStoreUrl"}, "llm-edge:gateway.sharedLimits.urlConfigKey: is only for mode: external"),
    ({"mode": "redis"}, "llm-edge:gateway.sharedLimits.mode:"),
    ({"mode": "in-cluster", "image": "valkey/valkey:latest"}, "llm-edge:gateway.sharedLimits.image:"),
    ({"mode": "in-cluster", "timeoutMs": 0}, "llm-edge:gateway.sharedLimits.timeoutMs:"),
])
def test_shared_limits_errors_name_the_key(shared, line):
    [error] = errors_of(with_("gateway", {"sharedLimits": shared}, VALID))
    assert error.startswith(line), error
