"""Prometheus metrics, in a registry of their own so tests and several apps never share state.

Label values come only from configuration (client names, model names, upstream addresses) or
from a fixed set ("-" for an unauthenticated caller or an unknown model): a caller cannot create
label values, so it cannot blow up the series count.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

UNKNOWN = "-"
# nginx's convention: the client went away before the reply was complete.
CLIENT_CLOSED = 499

# Latency buckets from 5 ms (gateway overhead on a cached reply) to 10 min (long generations).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self, limit_store: bool = False) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "gateway_requests", "Requests answered, by client, model and HTTP status.",
            ["client", "model", "status"], registry=r)
        self.latency = Histogram(
            "gateway_request_duration_seconds", "Time from request to the last byte of the reply.",
            ["model"], buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds", "Streaming requests: time to the first streamed event.",
            ["model"], buckets=_LATENCY_BUCKETS, registry=r)
        self.tokens = Counter(
            "gateway_tokens", "Tokens reported by the upstream's usage, by direction (in = prompt, out = completion).",
            ["client", "model", "direction"], registry=r)
        # 429s by the limit that refused them, named like its config key (gateway.clients[].rpm / tpm).
        self.rate_limited = Counter(
            "gateway_rate_limited", "Requests refused with 429, by client and the limit (rpm or tpm) that refused them.",
            ["client", "limit"], registry=r)
        self.in_flight = Gauge(
            "gateway_in_flight_requests", "Requests being proxied now (streams included).", registry=r)
        self.upstream_healthy = Gauge(
            "gateway_upstream_healthy", "1 if the upstream address takes traffic, 0 while it cools down.",
            ["model", "upstream"], registry=r)
        # Per model rather than per address: it exists even when DNS gives a model no address at
        # all, so "no upstream for this model" can be alerted on.
        self.model_healthy_upstreams = Gauge(
            "gateway_model_healthy_upstreams", "Upstream addresses taking traffic for the model (not cooling down).",
            ["model"], registry=r)
        self.upstream_outstanding = Gauge(
            "gateway_upstream_outstanding_requests", "Requests in flight to the upstream address.",
            ["model", "upstream"], registry=r)
        self.upstream_failures = Counter(
            "gateway_upstream_failures", "Failed attempts (connect error, timeout, 502/503/504) per upstream address.",
            ["model", "upstream"], registry=r)
        # Prefix-affinity routing (gateway/routing.py): one count per choice of an address.
        self.routing_decisions = Counter(
            "gateway_routing_decisions", "Address choices of prefix-affinity models: affinity (an address known to "
            "hold the conversation), hash (rendezvous choice for a prefix not known), bounded_load (the preferred "
            "address was too busy), least_outstanding (no prompt prefix: another route, or shorter than a block).",
            ["model", "decision"], registry=r)
        self.client_connections = Gauge(
            "gateway_client_connections", "Open client connections on the API port.", registry=r)
        self.connections_refused = Counter(
            "gateway_connections_refused", "Client connections refused with 503: client_max_connections were open.",
            registry=r)
        self.draining = Gauge("gateway_draining", "1 after SIGTERM, while in-flight requests finish.", registry=r)
        # Only with shared_limits: without a store there is nothing to be up or down.
        self.limit_store_up: Gauge | None = None
        self.limit_store_errors: Counter | None = None
        if limit_store:
            self.limit_store_up = Gauge(
                "gateway_limit_store_up",
                "1 while rpm and tpm are enforced in the shared store, 0 while this replica falls back to its local share.",
                registry=r)
            self.limit_store_errors = Counter(
                "gateway_limit_store_errors",
                "Calls to the shared limit store that failed, by error (timeout, connection, response).",
                ["error"], registry=r)
        # labels() takes a lock and hashes its arguments; the hot path reuses children instead.
        self._children: dict[tuple, object] = {}

    def child(self, metric, *labels: str):
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def record(self, outcome: Outcome, duration: float) -> None:
        self.child(self.requests, outcome.client, outcome.model, str(outcome.status)).inc()
        if outcome.model is UNKNOWN:
            return
        self.child(self.latency, outcome.model).observe(duration)
        if outcome.prompt_tokens:
            self.child(self.tokens, outcome.client, outcome.model, "in").inc(outcome.prompt_tokens)
        if outcome.completion_tokens:
            self.child(self.tokens, outcome.client, outcome.model, "out").inc(outcome.completion_tokens)


class Outcome:
    """What the metrics and the access log record about one request once it is over."""

    __slots__ = ("route", "client", "model", "status", "prompt_tokens", "completion_tokens", "answered")

    def __init__(self, route: str = UNKNOWN) -> None:
        self.route = route  # one of the gateway's own paths, never the path a client sent
        self.client = UNKNOWN
        self.model = UNKNOWN
        self.status = 0  # set once known: when stream headers go out, or from the final response
        self.prompt_tokens = 0
        self.completion_tokens = 0
        # A stream's [DONE] went out: the client has the whole answer.
        self.answered = False

    def client_left(self) -> None:
        """The client closed its connection; a 499 unless it already had the whole answer.

        The openai SDK closes as soon as it reads [DONE], which can be before the upstream's
        body has ended.
        """
        if not self.answered:
            self.status = CLIENT_CLOSED

    def set_usage(self, usage: object) -> None:
        """The tokens of a reply's usage: Chat Completions' names, or the Responses API's."""
        if isinstance(usage, dict):
            self.prompt_tokens = count(usage.get("prompt_tokens", usage.get("input_tokens")))
            self.completion_tokens = count(usage.get("completion_tokens", usage.get("output_tokens")))


def count(value: object) -> int:
    return value if isinstance(value, int) and value > 0 else 0
