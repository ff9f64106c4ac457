"""The series names each exporter in the stack serves: what a dashboard query may ask for.

The gateway's come from its own registry (gateway/metrics.py) and vLLM's from the /metrics of a
real vLLM server (exporters/vllm-0.32.0.metrics.txt), plus the two names older images of this
stack still serve. The rest cannot run here; their names are copied from their sources, cited.
"""

from __future__ import annotations

import re
from pathlib import Path

from gateway.metrics import Metrics

VLLM_CAPTURE = Path(__file__).with_name("exporters") / "vllm-0.32.0.metrics.txt"

# vLLM before its renames (the stack pins vllm/vllm-openai:v0.11.0 and rocm/vllm 0.10.1):
# `gpu_cache_usage_perc` until 0.10 (docs.vllm.ai/en/v0.9.1/usage/metrics.html),
# `time_per_output_token_seconds` deprecated in 0.11, removed in 0.13 (vllm-project/vllm#24110, #32661).
VLLM_OLDER = {"vllm:gpu_cache_usage_perc"} | {
    f"vllm:time_per_output_token_seconds{suffix}" for suffix in ("_bucket", "_sum", "_count")
}

# cloudflared (github.com/cloudflare/cloudflared, 2025.x to 2026.8): proxy/metrics.go,
# supervisor/metrics.go (ha_connections), quic/metrics.go (the `quic_client_*` family).
CLOUDFLARED = {
    "cloudflared_tunnel_total_requests", "cloudflared_tunnel_request_errors", "cloudflared_tunnel_response_by_code",
    "cloudflared_tunnel_concurrent_requests_per_tunnel", "cloudflared_tunnel_ha_connections",
    "quic_client_smoothed_rtt", "quic_client_latest_rtt", "quic_client_min_rtt",
}

# kube-state-metrics, docs/metrics/workload/{deployment,pod,horizontalpodautoscaler}-metrics.md.
KUBE_STATE_METRICS = {
    "kube_deployment_status_replicas_ready", "kube_deployment_spec_replicas",
    "kube_pod_status_phase", "kube_pod_container_resource_requests", "kube_pod_container_status_restarts_total",
    "kube_horizontalpodautoscaler_status_current_replicas", "kube_horizontalpodautoscaler_spec_max_replicas",
}

# NVIDIA dcgm-exporter, etc/default-counters.csv (github.com/NVIDIA/dcgm-exporter).
DCGM = {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"}

# AMD device-metrics-exporter, docs/configuration/metricslist.md and pkg/amdgpu/gpuagent/gpuagent_gpu_metrics.go
# (github.com/ROCm/device-metrics-exporter).
AMD = {"gpu_gfx_activity", "gpu_used_vram", "gpu_total_vram"}

_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def gateway_names() -> set[str]:
    return {
        family.name + suffix
        # With the shared limit store's series, which a gateway exports only with gateway.sharedLimits.
        for family in Metrics(limit_store=True).registry.collect()
        for suffix in _SUFFIXES[family.type]
    }


def vllm_names() -> set[str]:
    lines = VLLM_CAPTURE.read_text().splitlines()
    served = {re.split(r"[{ ]", line, maxsplit=1)[0] for line in lines if line and not line.startswith("#")}
    return {name for name in served if name.startswith("vllm:")} | VLLM_OLDER


def exported_names() -> dict[str, set[str]]:
    return {
        "gateway": gateway_names(),
        "vllm": vllm_names(),
        "cloudflared": CLOUDFLARED,
        "kube-state-metrics": KUBE_STATE_METRICS,
        "dcgm-exporter": DCGM,
        "amd-device-metrics-exporter": AMD,
    }


# PromQL words that look like metric names: keywords and what follows `by (`/`on (` and friends.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (strings, label lists and durations set aside)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    names = re.findall(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", text)
    return {name for name in names if name not in _KEYWORDS and not re.fullmatch(r"[0-9.e+-]+", name)}
