"""Alerts: the Prometheus side of observability for one cluster.

A `PrometheusRule` (groups tunnel, gateway, vllm) and `PodMonitor`s for cloudflared, the gateway
and vLLM, for the cluster's own Prometheus (prometheus-operator). Every rule filters on this
stack's namespace, so several stacks (and preview namespaces) can share one Prometheus. Each
alert carries `severity` and links to its section of docs/alerts.md. Thresholds and `for`
durations come from `alerts.rules` in the stack config; tests/components/observability/test_alerts.py proves with promtool
that each alert fires on a failing series and stays quiet on a healthy one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.config import AlertSettings
from components.inference import service_name as vllm_deployment_name
from components.kube import object_labels, selector_labels

API_VERSION = "monitoring.coreos.com/v1"
RULE_NAME = "llm-edge-alerts"
# Prometheus takes the `job` label of every scraped series from this pod label
# (cloudflared, gateway, vllm), so the rules can name the job without knowing the operator's
# default `<namespace>/<monitor>` format.
JOB_LABEL = "app.kubernetes.io/name"
# Label on each alert naming the stack and cluster it comes from (`<stack>-<cluster>`).
INSTANCE_LABEL = "llm_edge_instance"


@dataclass(frozen=True)
class MonitoredApp:
    """Pods to scrape: their `app.kubernetes.io/name` and the container port serving /metrics."""

    app: str
    port: str
    path: str = "/metrics"


CLOUDFLARED = MonitoredApp("cloudflared", "metrics")
# The gateway serves /metrics on its own port, never reachable through the tunnel.
GATEWAY = MonitoredApp("gateway", "metrics")
VLLM = MonitoredApp("vllm", "http")


@dataclass(frozen=True)
class AlertsArgs:
    namespace: pulumi.Input[str]
    # The same namespace as plain text: the rules' PromQL filters on it.
    namespace_name: str
    instance: str
    connector_replicas: int
    # Config names of the models vLLM serves in this cluster (their Deployments are `vllm-<name>`).
    models: list[str]
    gateway: bool
    settings: AlertSettings
    # The gateway keeps its limits in a shared store (gateway.sharedLimits).
    shared_limits: bool = False
    # Alert name -> URL of the dashboard panel that explains it (GrafanaDashboards.links).
    dashboard_links: dict[str, str] = field(default_factory=dict)


class PrometheusAlerts(pulumi.ComponentResource):
    """Rules and monitors of one cluster. Its type token keeps the name `Alerts` of the first
    release: every child's URN contains it."""

    rule: k8s.apiextensions.CustomResource | None
    monitors: dict[str, k8s.apiextensions.CustomResource]

    def __init__(self, name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:observability:Alerts", name, None, opts)
        settings = args.settings
        apps = [CLOUDFLARED] + ([GATEWAY] if args.gateway else []) + ([VLLM] if args.models else [])
        self.rule = None
        if settings.prometheus_rules:
            self.rule = k8s.apiextensions.CustomResource(
                f"{name}-rule",
                api_version=API_VERSION,
                kind="PrometheusRule",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=RULE_NAME,
                    namespace=args.namespace,
                    labels={**object_labels("llm-edge-alerts", args.instance, "alerts"), **settings.rule_labels},
                ),
                spec={"groups": rule_groups(args)},
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.monitors = {}
        if settings.pod_monitors:
            for monitored in apps:
                self.monitors[monitored.app] = k8s.apiextensions.CustomResource(
                    f"{name}-monitor-{monitored.app}",
                    api_version=API_VERSION,
                    kind="PodMonitor",
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        name=monitored.app,
                        namespace=args.namespace,
                        labels={**object_labels(monitored.app, args.instance, "monitoring"), **settings.monitor_labels},
                    ),
                    spec={
                        "jobLabel": JOB_LABEL,
                        "namespaceSelector": {"matchNames": [args.namespace_name]},
                        "selector": {"matchLabels": selector_labels(monitored.app, args.instance)},
                        "podMetricsEndpoints": [{"port": monitored.port, "path": monitored.path}],
                    },
                    opts=pulumi.ResourceOptions(parent=self),
                )
        self.register_outputs({})


def _selector(namespace: str, job: str, extra: str = "") -> str:
    return "{" + f'namespace="{namespace}",job="{job}"' + (f",{extra}" if extra else "") + "}"


def rule_groups(args: AlertsArgs) -> list[dict]:
    """The PrometheusRule's groups: tunnel always, gateway and vLLM when the cluster runs them."""
    rules, ns, runbook = args.settings.rules, args.namespace_name, args.settings.runbook_url

    def alert(name: str, expr: str, hold: str, severity: str, summary: str, description: str) -> dict:
        annotations = {
            "summary": summary,
            "description": description,
            # GitHub's anchor of a `## Name` heading is the name in lower case.
            "runbook_url": f"{runbook}#{name.lower()}",
        }
        if name in args.dashboard_links:
            annotations["dashboard_url"] = args.dashboard_links[name]
        return {
            "alert": name,
            "expr": expr,
            "for": hold,
            "labels": {"severity": severity, INSTANCE_LABEL: args.instance},
            "annotations": annotations,
        }

    cf = _selector(ns, CLOUDFLARED.app)
    replicas = args.connector_replicas
    tunnel = [
        alert(
            "LlmEdgeTunnelDown",
            # No series at all (every cloudflared target down or gone) counts as zero connections.
            f"(sum(cloudflared_tunnel_ha_connections{cf}) or vector(0)) < 1",
            rules.tunnel_down.for_, "critical",
            f"No cloudflared connector of {args.instance} is connected to Cloudflare",
            f"cloudflared in namespace {ns} holds no connection to the Cloudflare edge (or cannot be scraped): "
            f"this cluster's tunnel serves no traffic.",
        ),
        alert(
            "LlmEdgeTunnelDegraded",
            f"count(cloudflared_tunnel_ha_connections{cf} > 0) < {replicas}",
            rules.tunnel_degraded.for_, "warning",
            f"Fewer than {replicas} cloudflared connectors of {args.instance} are connected",
            f"Fewer than the {replicas} configured cloudflared replicas in namespace {ns} hold a connection to "
            f"Cloudflare: a few more failures and the tunnel goes down.",
        ),
        alert(
            "LlmEdgeTunnelErrorRatio",
            f"sum(rate(cloudflared_tunnel_request_errors{cf}[5m])) / sum(rate(cloudflared_tunnel_total_requests{cf}[5m]))"
            f" > {rules.tunnel_error_ratio.threshold}",
            rules.tunnel_error_ratio.for_, "warning",
            f"cloudflared of {args.instance} fails to reach its origin for many requests",
            f"More than {rules.tunnel_error_ratio.threshold:.0%} of the requests cloudflared in namespace {ns} "
            f"proxies fail before an answer from the origin (the gateway).",
        ),
    ]
    groups = [{"name": "llm-edge-tunnel", "rules": tunnel}]

    if args.gateway:
        gw = _selector(ns, GATEWAY.app)
        gw_5xx = _selector(ns, GATEWAY.app, 'status=~"5.."')
        gw_429 = _selector(ns, GATEWAY.app, 'status="429"')
        groups.append({"name": "llm-edge-gateway", "rules": [
            alert(
                "LlmEdgeGatewayErrorRatio",
                f"sum by (model) (rate(gateway_requests_total{gw_5xx}[5m])) / sum by (model) (rate(gateway_requests_total{gw}[5m]))"
                f" > {rules.gateway_error_ratio.threshold}",
                rules.gateway_error_ratio.for_, "critical",
                "The gateway answers model {{ $labels.model }} with server errors",
                f"More than {rules.gateway_error_ratio.threshold:.0%} of the gateway's answers for model "
                f"{{{{ $labels.model }}}} in namespace {ns} are 5xx.",
            ),
            alert(
                "LlmEdgeGatewaySlowFirstToken",
                f"histogram_quantile(0.95, sum by (model, le) (rate(gateway_time_to_first_token_seconds_bucket{gw}[5m])))"
                f" > {rules.gateway_first_token_p95.threshold}",
                rules.gateway_first_token_p95.for_, "warning",
                "Slow first token through the gateway for model {{ $labels.model }}",
                f"The 95th percentile of the time to the first streamed token for model {{{{ $labels.model }}}} "
                f"in namespace {ns} is above {rules.gateway_first_token_p95.threshold:g}s.",
            ),
            alert(
                "LlmEdgeGatewayNoHealthyUpstream",
                # Counted per model, so a pool with no addresses at all (the Service has no
                # ready pod) reads 0 instead of having no series.
                f"max by (model) (gateway_model_healthy_upstreams{gw}) < 1",
                rules.gateway_no_healthy_upstream.for_, "critical",
                "The gateway has no healthy upstream for model {{ $labels.model }}",
                f"No gateway replica in namespace {ns} sees a healthy upstream address for model "
                f"{{{{ $labels.model }}}}: its requests fail.",
            ),
            alert(
                "LlmEdgeGatewayRateLimited",
                f"sum(rate(gateway_requests_total{gw_429}[5m])) / sum(rate(gateway_requests_total{gw}[5m]))"
                f" > {rules.gateway_rate_limited_ratio.threshold}",
                rules.gateway_rate_limited_ratio.for_, "warning",
                f"Many gateway requests of {args.instance} are rejected by rate limits",
                f"More than {rules.gateway_rate_limited_ratio.threshold:.0%} of the gateway's requests in namespace "
                f"{ns} are answered 429 (a client's rpm or tpm limit).",
            ),
            *([alert(
                "LlmEdgeGatewayLimitStoreDown",
                f"min(gateway_limit_store_up{gw}) < 1",
                rules.gateway_limit_store_down.for_, "warning",
                f"Gateway replicas of {args.instance} cannot reach the shared limit store",
                f"At least one gateway replica in namespace {ns} decides rpm and tpm by its local share "
                f"(each limit / gateway.replicas) because the shared limit store does not answer: with more replicas "
                f"than gateway.replicas running, clients can get more than their limits.",
            )] if args.shared_limits else []),
        ]})

    if args.models:
        vl = _selector(ns, VLLM.app)
        deployments = "|".join(vllm_deployment_name(model) for model in args.models)
        ksm = f'namespace="{ns}",deployment=~"{deployments}"'
        gpu_requests = f'namespace="{ns}",resource=~"nvidia_com_gpu|amd_com_gpu"'
        groups.append({"name": "llm-edge-vllm", "rules": [
            alert(
                "LlmEdgeModelNoReadyReplica",
                f"(kube_deployment_status_replicas_ready{{{ksm}}} < 1)"
                f" and on (namespace, deployment) (kube_deployment_spec_replicas{{{ksm}}} > 0)",
                rules.model_no_ready_replica.for_, "critical",
                "No ready vLLM replica in {{ $labels.deployment }}",
                f"Deployment {{{{ $labels.deployment }}}} in namespace {ns} has no ready pod: its model is not served "
                f"in this cluster.",
            ),
            alert(
                "LlmEdgeVllmQueueBuildUp",
                f"vllm:num_requests_waiting{vl} > {rules.vllm_queue_waiting.threshold:g}",
                rules.vllm_queue_waiting.for_, "warning",
                "Requests queue up in vLLM pod {{ $labels.pod }}",
                f"More than {rules.vllm_queue_waiting.threshold:g} requests wait in the queue of {{{{ $labels.pod }}}} "
                f"(model {{{{ $labels.model_name }}}}).",
            ),
            alert(
                "LlmEdgeVllmKvCacheSaturated",
                # vLLM renamed the gauge (0.10); images of either age are covered.
                f"max by (namespace, pod, model_name) (vllm:kv_cache_usage_perc{vl} or vllm:gpu_cache_usage_perc{vl})"
                f" > {rules.vllm_kv_cache_usage.threshold}",
                rules.vllm_kv_cache_usage.for_, "warning",
                "KV cache of vLLM pod {{ $labels.pod }} is nearly full",
                f"The KV cache of {{{{ $labels.pod }}}} (model {{{{ $labels.model_name }}}}) is above "
                f"{rules.vllm_kv_cache_usage.threshold:.0%}: new requests wait and running ones get preempted.",
            ),
            alert(
                "LlmEdgeVllmPreemptions",
                f"sum by (model_name) (rate(vllm:num_preemptions_total{vl}[5m])) * 60"
                f" > {rules.vllm_preemptions_per_minute.threshold:g}",
                rules.vllm_preemptions_per_minute.for_, "warning",
                "vLLM preempts requests of model {{ $labels.model_name }}",
                f"vLLM preempts more than {rules.vllm_preemptions_per_minute.threshold:g} requests per minute for "
                f"model {{{{ $labels.model_name }}}} in namespace {ns}: the KV cache is too small for the load.",
            ),
            alert(
                "LlmEdgeVllmSlowFirstToken",
                f"histogram_quantile(0.99, sum by (model_name, le) (rate(vllm:time_to_first_token_seconds_bucket{vl}[5m])))"
                f" > {rules.vllm_first_token_p99.threshold}",
                rules.vllm_first_token_p99.for_, "warning",
                "Slow first token in vLLM for model {{ $labels.model_name }}",
                f"vLLM's 99th percentile time to first token for model {{{{ $labels.model_name }}}} in namespace {ns} "
                f"is above {rules.vllm_first_token_p99.threshold:g}s.",
            ),
            alert(
                "LlmEdgeGpuPodPending",
                f'(sum by (namespace, pod) (kube_pod_status_phase{{namespace="{ns}",phase="Pending"}}) > 0)'
                f" and on (namespace, pod) (sum by (namespace, pod) (kube_pod_container_resource_requests{{{gpu_requests}}}) > 0)",
                rules.gpu_pod_pending.for_, "warning",
                "GPU pod {{ $labels.pod }} is stuck in Pending",
                f"Pod {{{{ $labels.pod }}}} in namespace {ns} requests GPUs and has been Pending for "
                f"{rules.gpu_pod_pending.for_}: no node with a free GPU accepts it, or its image is still downloading.",
            ),
        ]})
    return groups
