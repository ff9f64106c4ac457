"""Failing and healthy series for every alert of the rendered PrometheusRule, as promtool tests.

Each alert name maps to a function that, given what the rendered rule and stack say (namespace,
thresholds, configured replicas, vLLM Deployments), returns scenarios: input series and the
labels of the alerts they must raise. Series values are derived from the rule's own threshold
(twice it to fail, half of it to stay quiet), so a changed threshold in config is still tested.
Series carry the labels Prometheus gives them through the PodMonitors (`namespace`, `job`, `pod`)
or kube-state-metrics.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

KSM = "kube-state-metrics"


@dataclass(frozen=True)
class Scenario:
    description: str
    # series selector -> promtool expanding notation over the test's minutes, e.g. "0+10x{n}"
    series: dict[str, str]
    # Label sets (series labels, without the rule's static labels) of the alerts that must fire;
    # empty for a healthy scenario.
    alerts: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    namespace: str
    expr: str
    vllm_deployments: list[str]

    @property
    def threshold(self) -> float:
        match = re.search(r"[<>] ([0-9.]+(?:e[+-]?[0-9]+)?)$", self.expr)
        assert match, f"no trailing threshold in {self.expr!r}"
        return float(match.group(1))

    def sel(self, metric: str, job: str, **labels: str) -> str:
        return _series(metric, {"namespace": self.namespace, "job": job, **labels})


def _series(metric: str, labels: dict[str, str]) -> str:
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    return f"{value:.6g}"


def _failing_ratio(threshold: float) -> float:
    return min(2 * threshold, (1 + threshold) / 2)


def _gauge(value: float) -> str:
    return f"{_num(value)}+0x{{n}}"


def _counter(per_minute: float) -> str:
    return f"0+{_num(per_minute)}x{{n}}"


def _histogram(ctx: Context, metric: str, job: str, labels: dict[str, str], threshold: float, slow: bool) -> dict[str, str]:
    """Buckets where every observation is either far above the threshold (slow) or below half of it."""
    bounds = [threshold / 2, threshold, threshold * 4]
    per_minute = 10
    series = {}
    for bound in bounds:
        below = 0 if slow else per_minute
        if bound == bounds[-1]:
            below = per_minute
        series[ctx.sel(metric, job, **labels, le=_num(bound))] = _counter(below)
    series[ctx.sel(metric, job, **labels, le="+Inf")] = _counter(per_minute)
    return series


# ---- tunnel ---------------------------------------------------------------------------------

def tunnel_down(ctx: Context) -> tuple[list[Scenario], list[Scenario]]:
    metric = "cloudflared_tunnel_ha_connections"
    firing = [
        Scenario("every replica has 0 connections",
                 {ctx.sel(metric, "cloudflared", pod="cloudflared-a"): _gauge(0),
                  ctx.sel(metric, "cloudflared", pod="cloudflared-b"): _gauge(0)}, [{}]),
        Scenario("no cloudflared target can be scraped (no series at all)",
                 {ctx.sel("up", "cloudflared", pod="cloudflared-a"): _gauge(0)}, [{}]),
    ]
    quiet = [
        Scenario("one replica connected, one not",
                 {ctx.sel(metric, "cloudflared", pod="cloudflared-a"): _gauge(4),
                  ctx.sel(metric, "cloudflared", pod="cloudflared-b"): _gauge(0)}),
        Scenario("another namespace's tunnel is down, not this one",
                 {ctx.sel(metric, "cloudflared", pod="cloudflared-a"): _gauge(4),
                  _series(metric, {"namespace": "elsewhere", "job": "cloudflared", "pod": "x"}): _gauge(0)}),
    ]
    return firing, quiet


def tunnel_degraded(ctx: Context) -> tuple[list[Scenario], list[Scenario]]:
    replicas = int(ctx.threshold)
    metric = "cloudflared_tunnel_ha_connections"

    def pods(connected: int) -> dict[str, str]:
        return {ctx.sel(metric, "cloudflared", pod=f"cloudflared-{i}"): _gauge(4 if i < connected else 0) for i in range(replicas)}

    return (
        [Scenario(f"{replicas - 1} of {replicas} replicas connected", pods(replicas - 1), [{}])],
        [Scenario(f"all {replicas} replicas connected", pods(replicas))],
    )


def tunnel_error_ratio(ctx: Context) -> tuple[list[Scenario], list[Scenario]]:
    def traffic(ratio: float) -> dict[str, str]:
        return {
            ctx.sel("cloudflared_tunnel_total_requests", "cloudflared", pod="cloudflared-a"): _counter(100),
            ctx.sel("cloudflared_tunnel_request_errors", "cloudflared", pod="cloudflared-a"): _counter(100 * ratio),
        }

    return (
        [Scenario("errors above the threshold", traffic(_failing_ratio(ctx.threshold)), [{}])],
        [Scenario("errors below the threshold", traffic(ctx.threshold / 2)),
         Scenario("no traffic at all", {ctx.sel("cloudflared_tunnel_total_requests", "cloudflared", pod="cloudflared-a"): _counter(0)})],
    )


# ---- gateway --------------------------------------------------------------------------------

def _gateway_answers(ctx: Context, share: float, status: str) -> dict[str, str]:
    labels = {"pod": "gateway-a", "client": "webapp", "model": "llama"}
    return {
        ctx.sel("gateway_requests_total", "gateway", **labels, status="200"): _counter(100 * (1 - share)),
        ctx.sel("gateway_requests_total", "gateway", **labels, status=status): _counter(100 * share),
    }


def gateway_error_ratio(ctx: Context) -> tuple[list[Scenario], list[Scenario]]:
    return (
        [Scenario("502s above the threshold", _gateway_answers(ctx, _failing_ratio(ctx.threshold), "502"), [{"model": "llama"}])],
        [Scenario("502s below the threshold", _gateway_answers(ctx, ctx.threshold / 2, "502")),
         Scenario("4xx are the clients' errors, not the gateway's", _gateway_answers(ctx, 0.9, "404"))],
    )


def gateway_slow_first_token(ctx: Context) -> tuple[list[Scenario], list[Scenario]]:
    metric, labels = "gateway_time_to_first_token_seconds_bucket", {"pod": "gateway-a", "model": "llama"}
    return (
        [Scenario("first tokens far above the threshold", _histogram(ctx, metric, "gateway", labels, ctx.threshold, True),
                  [{"model": "llama"}])],
        [Scenario("first tokens below half the threshold", _histogram(ctx, metric, "gateway", labels, ctx.threshold, False))],
    )


def gateway_no_healthy_upstream(ctx: Context) -> tuple[list[Scenario], list[Scenario]]:
    def healthy(first: int, second: int) -> dict[str, str]:
        """How many upstream addresses of the model each gateway replica sees taking traffic."""
        return {
            ctx.sel("gateway_model_healthy_upstreams", "gateway", pod="gateway-a", model="llama"): _gauge(first),
            ctx.sel("gateway_model_healthy_upstreams", "gateway", pod="gateway-b", model="llama"): _gauge(second),
        }

    return (
        [Scenario("no replica sees a healthy address (or the pool is empty)", healthy(0, 0), [{"model": "llama"}])],
        [Scenario("one replica still sees a healthy address", healthy(0, 1))],
    )


def gateway_rate_limited(ctx: Context) -> tuple[list[Scenario], list[Scenario]]:
    return (
        [Scenario("429s above the threshold", _gateway_answers(ctx, _failing_ratio(ctx.threshold), "429"), [{}])],
        [Scenario("429s below the threshold", _gateway_answers(ctx, ctx.threshold / 2, "429"))],
    )


def gateway_limit_store_down(ctx: Context) -> tuple[list[Scenario], list[Scenario]]:
    def up(first: int, second: int) -> dict[str, str]:
        return {
            ctx.sel("gateway_limit_store_up", "gateway", pod="gateway-a"): _gauge(first),
            ctx.sel("gateway_limit_store_up", "gateway", pod="gateway-b"): _gauge(second),
        }

    return (
        [Scenario("one replica cannot reach the store", up(1, 0), [{}])],
        [Scenario("every replica reaches the store", up(1, 1))],
    )


# ---- vLLM -----------------------------------------------------------------------------------

def model_no_ready_replica(ctx: Context) -> tuple[list[Scenario], list[Scenario]]:
    assert ctx.vllm_deployments, "the rule has a vLLM group but the stack renders no vLLM Deployment"

    def deployments(ready: int, wanted: int) -> dict[str, str]:
        series = {}
        for name in ctx.vllm_deployments:
            labels = {"namespace": ctx.namespace, "job": KSM, "deployment": name}
            series[_series("kube_deployment_status_replicas_ready", labels)] = _gauge(ready)
            series[_series("kube_deployment_spec_replicas", labels)] = _gauge(wanted)
        return series

    expected = [{"namespace": ctx.namespace, "job": KSM, "deployment": name} for name in ctx.vllm_deployments]
    return (
        [Scenario("every model's Deployment has 0 ready of 1", deployments(0, 1), expected)],
        [Scenario("every model's Deployment has 1 ready of 1", deployments(1, 1)),
         Scenario("scaled to 0 on purpose", deployments(0, 0))],
    )


VLLM_POD = {"pod": "vllm-llama-0", "model_name": "llama-3.1-8b-instruct"}


def vllm_queue(ctx: Context) -> tuple[list[Scenario], list[Scenario]]:
    metric = "vllm:num_requests_waiting"
    expected = {"namespace": ctx.namespace, "job": "vllm", **VLLM_POD}
    return (
        [Scenario("queue at twice the threshold", {ctx.sel(metric, "vllm", **VLLM_POD): _gauge(2 * ctx.threshold)}, [expected])],
        [Scenario("queue at half the threshold", {ctx.sel(metric, "vllm", **VLLM_POD): _gauge(ctx.threshold / 2)})],
    )


def vllm_kv_cache(ctx: Context) -> tuple[list[Scenario], list[Scenario]]:
    full, half = _failing_ratio(ctx.threshold), ctx.threshold / 2
    expected = [{"namespace": ctx.namespace, **VLLM_POD}]
    return (
        [Scenario("vllm:kv_cache_usage_perc nearly full",
                  {ctx.sel("vllm:kv_cache_usage_perc", "vllm", **VLLM_POD): _gauge(full)}, expected),
         Scenario("older vLLM: vllm:gpu_cache_usage_perc nearly full",
                  {ctx.sel("vllm:gpu_cache_usage_perc", "vllm", **VLLM_POD): _gauge(full)}, expected)],
        [Scenario("both names at half the threshold",
                  {ctx.sel("vllm:kv_cache_usage_perc", "vllm", **VLLM_POD): _gauge(half),
                   ctx.sel("vllm:gpu_cache_usage_perc", "vllm", pod="vllm-llama-1", model_name=VLLM_POD["model_name"]): _gauge(half)})],
    )


def vllm_preemptions(ctx: Context) -> tuple[list[Scenario], list[Scenario]]:
    metric = "vllm:num_preemptions_total"
    expected = [{"model_name": VLLM_POD["model_name"]}]
    return (
        [Scenario("twice the threshold per minute", {ctx.sel(metric, "vllm", **VLLM_POD): _counter(2 * ctx.threshold)}, expected)],
        [Scenario("half the threshold per minute", {ctx.sel(metric, "vllm", **VLLM_POD): _counter(ctx.threshold / 2)})],
    )


def vllm_slow_first_token(ctx: Context) -> tuple[list[Scenario], list[Scenario]]:
    metric = "vllm:time_to_first_token_seconds_bucket"
    expected = [{"model_name": VLLM_POD["model_name"]}]
    return (
        [Scenario("first tokens far above the threshold", _histogram(ctx, metric, "vllm", VLLM_POD, ctx.threshold, True), expected)],
        [Scenario("first tokens below half the threshold", _histogram(ctx, metric, "vllm", VLLM_POD, ctx.threshold, False))],
    )


def gpu_pod_pending(ctx: Context) -> tuple[list[Scenario], list[Scenario]]:
    def pod(name: str, phase: str, resource: str) -> dict[str, str]:
        base = {"namespace": ctx.namespace, "job": KSM, "pod": name}
        series = {_series("kube_pod_status_phase", {**base, "phase": p}): _gauge(1 if p == phase else 0) for p in ("Pending", "Running")}
        requests = {**base, "container": "vllm", "resource": resource, "unit": "integer"}
        series[_series("kube_pod_container_resource_requests", requests)] = _gauge(1)
        return series

    pending = {"namespace": ctx.namespace, "pod": "vllm-llama-0"}
    return (
        [Scenario("NVIDIA GPU pod Pending", pod("vllm-llama-0", "Pending", "nvidia_com_gpu"), [pending]),
         Scenario("AMD GPU pod Pending", pod("vllm-llama-0", "Pending", "amd_com_gpu"), [pending])],
        [Scenario("GPU pod Running", pod("vllm-llama-0", "Running", "nvidia_com_gpu")),
         Scenario("Pending pod without GPUs", pod("gateway-x", "Pending", "cpu"))],
    )


CASES: dict[str, Callable[[Context], tuple[list[Scenario], list[Scenario]]]] = {
    "LlmEdgeTunnelDown": tunnel_down,
    "LlmEdgeTunnelDegraded": tunnel_degraded,
    "LlmEdgeTunnelErrorRatio": tunnel_error_ratio,
    "LlmEdgeGatewayErrorRatio": gateway_error_ratio,
    "LlmEdgeGatewaySlowFirstToken": gateway_slow_first_token,
    "LlmEdgeGatewayNoHealthyUpstream": gateway_no_healthy_upstream,
    "LlmEdgeGatewayRateLimited": gateway_rate_limited,
    "LlmEdgeGatewayLimitStoreDown": gateway_limit_store_down,
    "LlmEdgeModelNoReadyReplica": model_no_ready_replica,
    "LlmEdgeVllmQueueBuildUp": vllm_queue,
    "LlmEdgeVllmKvCacheSaturated": vllm_kv_cache,
    "LlmEdgeVllmPreemptions": vllm_preemptions,
    "LlmEdgeVllmSlowFirstToken": vllm_slow_first_token,
    "LlmEdgeGpuPodPending": gpu_pod_pending,
}
