"""The Gateway dashboard: per client and model, what the API-key gateway answers and how its
upstreams fare (metric names: gateway/metrics.py; replicas: kube-state-metrics)."""

from __future__ import annotations

from components.observability.grafana import promql
from components.observability.grafana.panels import ERRORS, DashboardSpec, Panel, Query, Row, Variable, rate_panel
from components.observability.grafana.scope import (
    CHOSEN_CLIENTS,
    CHOSEN_MODELS,
    GATEWAY,
    GATEWAY_CHOSEN,
    GATEWAY_MODELS,
    DashboardScope,
)
from components.observability.grafana.tunnel import NAMESPACE_VARIABLE

MODEL_VARIABLE = Variable("model", "Model", '{namespace="$namespace",job="gateway"}', "model")
CLIENT_VARIABLE = Variable("client", "Client", '{namespace="$namespace",job="gateway"}', "client")
# The gateway's autoscaler has the Deployment's name (components/gateway/gateway.py).
AUTOSCALER = promql.kube('horizontalpodautoscaler="gateway"')
SERVER_ERRORS = promql.selector("gateway", CHOSEN_MODELS, CHOSEN_CLIENTS, 'status=~"5.."')


def server_error_ratio(by: str, width: int = 8) -> Panel:
    return Panel(
        "Server error ratio",
        "Share of the gateway's answers that are 5xx: 502/504 come from the upstream (vLLM or a backend), 500 from "
        "the gateway itself.",
        (Query(promql.failure_ratio("gateway_requests_total", SERVER_ERRORS, GATEWAY_CHOSEN, by),
               "{{model}}" if by else "5xx", ERRORS),),
        unit="percentunit", alert="LlmEdgeGatewayErrorRatio", width=width,
    )


def first_token(by: str, width: int = 8) -> Panel:
    return Panel(
        "Time to first token (gateway)",
        "How long streaming clients wait for the first event, through the gateway: includes vLLM's queue and prefill.",
        tuple(Query(promql.quantile(q, "gateway_time_to_first_token_seconds", GATEWAY_MODELS, by),
                    f"p{round(q * 100)} {{{{model}}}}") for q in (0.5, 0.95)),
        unit="s", alert="LlmEdgeGatewaySlowFirstToken", width=width,
    )


def replicas_in_use(width: int = 8) -> Panel:
    return Panel(
        "Replicas of the autoscaler's maximum",
        "Gateway replicas running, as a share of the autoscaler's `gateway.maxReplicas`: at 100% it cannot add more.",
        (Query(f"sum(kube_horizontalpodautoscaler_status_current_replicas{AUTOSCALER})"
               f" / sum(kube_horizontalpodautoscaler_spec_max_replicas{AUTOSCALER})", "replicas"),),
        unit="percentunit", width=width,
    )


def limit_store() -> Panel:
    return Panel(
        "Shared limit store",
        "1 while a replica enforces rpm and tpm in the shared store (gateway.sharedLimits), 0 while it decides by "
        "its local share because the store does not answer; `errors` are its failed calls per second, by kind "
        "(timeout, connection, response).",
        (Query(f"min by (pod) (gateway_limit_store_up{GATEWAY})", "{{pod}}"),
         Query(f"{promql.summed_rate('gateway_limit_store_errors_total', GATEWAY, 'error')}"
               f" or min(gateway_limit_store_up{GATEWAY}) * 0", "{{error}}", ERRORS)),
        alert="LlmEdgeGatewayLimitStoreDown", width=24,
    )


def dashboard(scope: DashboardScope) -> DashboardSpec:
    return DashboardSpec(
        key="gateway",
        title=f"llm-edge / Gateway ({scope.instance})",
        description="The API-key gateway: answers per client and model, tokens, limits, latency and upstream health.",
        variables=(NAMESPACE_VARIABLE, MODEL_VARIABLE, CLIENT_VARIABLE),
        rows=(
            Row("Requests", (
                rate_panel("Requests by status",
                           "Answers per second by HTTP status; 499 is a client that left before its answer was complete.",
                           "gateway_requests_total", GATEWAY_CHOSEN, "status", "{{status}}"),
                server_error_ratio("model"),
                rate_panel("Requests by client and model", "Answers per second for each client key and model.",
                           "gateway_requests_total", GATEWAY_CHOSEN, "client, model", "{{client}} {{model}}"),
                rate_panel("Rate-limited requests by client and limit",
                           "Requests answered 429 because a client's `rpm` or `tpm` (gateway.clients) was used up.",
                           "gateway_rate_limited_total", promql.selector("gateway", CHOSEN_CLIENTS), "client, limit",
                           "{{client}} {{limit}}", alert="LlmEdgeGatewayRateLimited", width=12),
                rate_panel("Tokens by client and model", "Tokens per second from the upstream's usage: in = prompt, out = completion.",
                           "gateway_tokens_total", GATEWAY_CHOSEN, "client, model, direction", "{{client}} {{model}} {{direction}}",
                           unit="short", width=12),
                *([limit_store()] if scope.shared_limits else []),
            )),
            Row("Latency", (
                first_token("model", width=12),
                Panel(
                    "Request duration",
                    "From the request to the last byte of the answer (streams: the whole generation).",
                    tuple(Query(promql.quantile(q, "gateway_request_duration_seconds", GATEWAY_MODELS, "model"),
                                f"p{round(q * 100)} {{{{model}}}}") for q in (0.5, 0.95)),
                    unit="s", width=12,
                ),
            )),
            Row("Upstreams", (
                Panel(
                    "Healthy upstream addresses",
                    "Addresses that take traffic for each model, the best replica's view: 0 means every request for "
                    "the model fails.",
                    (Query(f"max by (model) (gateway_model_healthy_upstreams{GATEWAY_MODELS})", "{{model}}"),),
                    alert="LlmEdgeGatewayNoHealthyUpstream",
                ),
                Panel(
                    "Upstream health by address",
                    "1 while an address takes traffic, 0 while it cools down after failures.",
                    (Query(f"min by (model, upstream) (gateway_upstream_healthy{GATEWAY_MODELS})", "{{model}} {{upstream}}"),),
                ),
                Panel(
                    "Outstanding requests by upstream",
                    "Requests in flight to each address: the gateway sends the next one to the least busy.",
                    (Query(f"sum by (model, upstream) (gateway_upstream_outstanding_requests{GATEWAY_MODELS})",
                           "{{model}} {{upstream}}"),),
                ),
                Panel(
                    "Upstream failures",
                    "Failed attempts per second (connect error, timeout, 502/503/504) for each model.",
                    (Query(f"{promql.summed_rate('gateway_upstream_failures_total', GATEWAY_MODELS, 'model')}"
                           f" or sum by (model) (gateway_model_healthy_upstreams{GATEWAY_MODELS}) * 0", "{{model}}", ERRORS),),
                    unit="reqps",
                ),
                Panel(
                    "In-flight requests per replica",
                    "Requests each gateway replica is proxying now (streams included); `draining` marks a replica "
                    "finishing its requests after SIGTERM.",
                    (Query(f"sum by (pod) (gateway_in_flight_requests{GATEWAY})", "{{pod}}"),
                     Query(f"max by (pod) (gateway_draining{GATEWAY})", "draining {{pod}}")),
                ),
                replicas_in_use(),
            )),
        ),
    )
