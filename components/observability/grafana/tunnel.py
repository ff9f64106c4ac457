"""The Tunnel dashboard: cloudflared's connections to Cloudflare and the requests it proxies.

cloudflared's metrics (its source: supervisor/metrics.go, proxy/metrics.go, quic/metrics.go) have
no latency of HTTP origins, so the origin's response time is the origin's own measure: the
gateway's, or vLLM's where no gateway runs.
"""

from __future__ import annotations

from components.observability.grafana import promql
from components.observability.grafana.panels import ERRORS, DashboardSpec, Panel, Query, Row, Variable, rate_panel
from components.observability.grafana.scope import CLOUDFLARED, CONNECTIONS_PER_CONNECTOR, GATEWAY, VLLM, DashboardScope

NAMESPACE_VARIABLE = Variable("namespace", "Namespace", '{job="cloudflared"}', "namespace", multi=False)


def connections_to_edge(scope: DashboardScope) -> Panel:
    return Panel(
        "Connections to the edge",
        f"Connections all connectors hold to Cloudflare's edge: {CONNECTIONS_PER_CONNECTOR} per healthy replica, "
        f"{CONNECTIONS_PER_CONNECTOR * scope.connector_replicas} with the {scope.connector_replicas} configured. "
        "0 means this cluster's tunnel serves nothing.",
        (Query(f"sum(cloudflared_tunnel_ha_connections{CLOUDFLARED}) or vector(0)", "connections"),),
        single=True, alert="LlmEdgeTunnelDown", width=6,
    )


def requests_per_connector() -> Panel:
    return rate_panel("Requests per connector", "Requests Cloudflare sends into this cluster's tunnel, per connector.",
                      "cloudflared_tunnel_total_requests", CLOUDFLARED, "pod", "{{pod}}")


def proxy_errors() -> Panel:
    return Panel(
        "Proxy error ratio",
        "Share of requests cloudflared fails to proxy to its origin (refused, unresolvable, timed out).",
        (Query(f"{promql.summed_rate('cloudflared_tunnel_request_errors', CLOUDFLARED)}"
               f" / {promql.summed_rate('cloudflared_tunnel_total_requests', CLOUDFLARED)}", "errors", ERRORS),),
        unit="percentunit", alert="LlmEdgeTunnelErrorRatio",
    )


def concurrent_requests(width: int = 8) -> Panel:
    return Panel(
        "Concurrent requests per connector",
        "Requests in flight through each connector: long generations keep streams open.",
        (Query(f"sum by (pod) (cloudflared_tunnel_concurrent_requests_per_tunnel{CLOUDFLARED})", "{{pod}}"),),
        width=width,
    )


def origin_latency(scope: DashboardScope) -> tuple[Panel, ...]:
    """None when the tunnel only routes to external backends: no origin here measures them."""
    if not (scope.gateway or scope.vllm_deployments):
        return ()
    if scope.gateway:
        histogram, labels, origin = "gateway_request_duration_seconds", GATEWAY, "the gateway"
    else:
        histogram, labels, origin = "vllm:e2e_request_latency_seconds", VLLM, "vLLM"
    return (Panel(
        "Origin response time",
        f"How long {origin}, the tunnel's origin, takes to answer, as it measures it (cloudflared has no such "
        "metric for HTTP origins). Hostname routes straight to a model: see the vLLM dashboard.",
        tuple(Query(promql.quantile(q, histogram, labels, ""), f"p{round(q * 100)}") for q in (0.5, 0.95)),
        unit="s", width=12,
    ),)


def dashboard(scope: DashboardScope) -> DashboardSpec:
    replicas = scope.connector_replicas
    return DashboardSpec(
        key="tunnel",
        title=f"llm-edge / Tunnel ({scope.instance})",
        description="cloudflared: its connections to Cloudflare's edge and the requests it proxies to the origin.",
        variables=(NAMESPACE_VARIABLE,),
        rows=(
            Row("Connections to Cloudflare", (
                connections_to_edge(scope),
                Panel(
                    "HA connections per connector",
                    f"Each connector's connections to the edge ({CONNECTIONS_PER_CONNECTOR} when healthy). Fewer than "
                    f"{replicas} connectors with connections is a degraded tunnel.",
                    (Query(f"sum by (pod) (cloudflared_tunnel_ha_connections{CLOUDFLARED})", "{{pod}}"),),
                    alert="LlmEdgeTunnelDegraded", width=9,
                ),
                Panel(
                    "Round trip to the edge",
                    "Smoothed QUIC round-trip time of each connection to Cloudflare (none with `--protocol http2`).",
                    (Query(f"max by (pod) (quic_client_smoothed_rtt{CLOUDFLARED})", "{{pod}}"),),
                    unit="ms", width=9,
                ),
            )),
            Row("Requests through the tunnel", (
                requests_per_connector(),
                rate_panel("Responses by status",
                           "Status codes cloudflared returns to the edge (the origin's, or 502 when it cannot reach it).",
                           "cloudflared_tunnel_response_by_code", CLOUDFLARED, "status_code", "{{status_code}}"),
                proxy_errors(),
                concurrent_requests(width=12),
                *origin_latency(scope),
            )),
        ),
    )
