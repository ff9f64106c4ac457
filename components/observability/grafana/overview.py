"""The Overview dashboard: the request path edge -> tunnel -> gateway -> vLLM, one row each with
rate, errors, latency and saturation, to see at a glance which part of the path is in trouble.

The edge is seen from inside the cluster, through what cloudflared exchanges with Cloudflare
(Cloudflare's own analytics of the zone are in its dashboard). Its panels reuse those of the
detail dashboards, without their alert: each alert links to its detail dashboard's panel.
"""

from __future__ import annotations

from dataclasses import replace

from components.observability.grafana import gateway, promql, tunnel, vllm
from components.observability.grafana.panels import ERRORS, DashboardSpec, Panel, Query, Row, rate_panel
from components.observability.grafana.scope import (
    CLOUDFLARED,
    CONNECTIONS_PER_CONNECTOR,
    GATEWAY_MODELS,
    VLLM,
    DashboardScope,
)

WIDTH = 6  # four panels a row


def _brief(panel: Panel) -> Panel:
    return replace(panel, alert=None, width=WIDTH)


def edge_row(scope: DashboardScope) -> Row:
    responses = "cloudflared_tunnel_response_by_code"
    return Row("Edge: Cloudflare to this cluster's tunnel", (
        rate_panel("Requests from the edge", "Requests Cloudflare sends into this cluster's tunnel.",
                   "cloudflared_tunnel_total_requests", CLOUDFLARED, "", "requests", width=WIDTH),
        Panel("5xx returned to the edge", "Share of answers to Cloudflare that are 5xx: what clients see as errors.",
              (Query(promql.failure_ratio(responses, promql.selector("cloudflared", 'status_code=~"5.."'), CLOUDFLARED),
                     "5xx", ERRORS),),
              unit="percentunit", width=WIDTH),
        Panel("Round trip to the edge", "Slowest smoothed QUIC round trip of the connections to Cloudflare.",
              (Query(f"max(quic_client_smoothed_rtt{CLOUDFLARED})", "rtt"),), unit="ms", width=WIDTH),
        Panel("Edge connections held",
              f"Connections to the edge as a share of {CONNECTIONS_PER_CONNECTOR} per configured connector: below 100% "
              "the tunnel has less redundancy.",
              (Query(f"sum(cloudflared_tunnel_ha_connections{CLOUDFLARED})"
                     f" / {CONNECTIONS_PER_CONNECTOR * scope.connector_replicas}", "connections"),),
              unit="percentunit", width=WIDTH),
    ))


def tunnel_row(scope: DashboardScope) -> Row:
    panels = [tunnel.requests_per_connector(), tunnel.proxy_errors(), *tunnel.origin_latency(scope), tunnel.concurrent_requests()]
    return Row("Tunnel: connectors to the origin", tuple(_brief(p) for p in panels))


def gateway_row() -> Row:
    return Row("Gateway", (
        rate_panel("Requests by model", "Answers per second of the gateway, per model.",
                   "gateway_requests_total", GATEWAY_MODELS, "model", "{{model}}", width=WIDTH),
        _brief(gateway.server_error_ratio("model")),
        _brief(gateway.first_token("model")),
        _brief(gateway.replicas_in_use()),
    ))


def vllm_row(scope: DashboardScope) -> Row:
    return Row("vLLM", (
        rate_panel("Generated tokens", "Tokens vLLM generates per second, per model.",
                   "vllm:generation_tokens_total", VLLM, "model_name", "{{model_name}}", unit="short", width=WIDTH),
        _brief(vllm.restarts(scope)),
        _brief(vllm.first_token()),
        _brief(vllm.kv_cache()),
    ))


def dashboard(scope: DashboardScope) -> DashboardSpec:
    rows = [edge_row(scope), tunnel_row(scope)]
    variables = [tunnel.NAMESPACE_VARIABLE]
    if scope.gateway:
        rows.append(gateway_row())
        variables += [gateway.MODEL_VARIABLE, gateway.CLIENT_VARIABLE]
    if scope.vllm_deployments:
        rows.append(vllm_row(scope))
        if not scope.gateway:
            variables.append(vllm.MODEL_VARIABLE)
    return DashboardSpec(
        key="overview",
        title=f"llm-edge / Overview ({scope.instance})",
        description="The request path edge -> tunnel -> gateway -> vLLM: rate, errors, latency and saturation of each.",
        variables=tuple(variables),
        rows=tuple(rows),
    )
