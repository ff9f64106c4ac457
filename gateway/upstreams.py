"""Where a model's requests go: by prompt prefix with bounded load (gateway/routing.py) for chat,
completions and responses, else least outstanding requests across the model's upstream addresses;
with passive health (an address failing `failures` times in a row cools down for `cooldown_s`).

An upstream URL whose host is a DNS name (e.g. a headless Service) is expanded into one
endpoint per address it resolves to, and re-resolved every `upstream_dns_refresh_s`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from . import routing
from .config import HealthSettings, ModelSettings, is_ip_literal
from .metrics import Metrics

log = logging.getLogger("gateway.upstreams")

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_addresses(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


class Endpoint:
    """One upstream address, e.g. http://10.0.0.5:8000 (Host header and TLS name kept from the URL)."""

    __slots__ = ("model", "target", "address", "url", "host", "connect_to", "outstanding",
                 "last_pick", "_failures", "_cooldown_until", "_failures_total", "_healthy_gauge")

    def __init__(self, model: str, target: tuple[str, str, int], address: str, metrics: Metrics):
        scheme, hostname, port = target
        shown = f"[{address}]" if ":" in address else address
        self.model = model
        self.target = target
        self.address = address
        self.url = f"{scheme}://{shown}:{port}"
        # Host header: the name from the URL, so name-based upstreams see the name they serve.
        self.host = (f"{shown}:{port}" if hostname == address else f"{hostname}:{port}").encode("idna")
        # (address, port, TLS server name or None for plain HTTP): the certificate is checked
        # against the URL's name even when connecting to one of its addresses.
        self.connect_to = (address, port, hostname if scheme == "https" else None)
        self.outstanding = 0
        self.last_pick = 0  # the pool's pick number when this endpoint was last chosen: breaks ties
        self._failures = 0
        self._cooldown_until = 0.0
        self._failures_total = metrics.upstream_failures.labels(model, self.url)
        self._healthy_gauge = metrics.upstream_healthy.labels(model, self.url)
        # Read at scrape time: a locked gauge update twice per request is measurable on the hot path.
        metrics.upstream_outstanding.labels(model, self.url).set_function(lambda: self.outstanding)
        self._healthy_gauge.set(1)

    def healthy(self, now: float) -> bool:
        return now >= self._cooldown_until

    def acquire(self) -> None:
        self.outstanding += 1

    def release(self) -> None:
        self.outstanding -= 1

    def record_success(self) -> None:
        if self._failures:
            self._failures = 0
            self._healthy_gauge.set(1)

    def record_failure(self, health: HealthSettings) -> None:
        self._failures += 1
        self._failures_total.inc()
        if self._failures >= health.failures:
            # After the cool-down the next request tries it again; one more failure re-arms it.
            self._failures = health.failures - 1
            self._cooldown_until = time.monotonic() + health.cooldown_s
            self._healthy_gauge.set(0)
            log.warning("upstream %s for model %s failed %d times in a row: skipped for %.1fs",
                        self.url, self.model, health.failures, health.cooldown_s)

    def forget(self, metrics: Metrics) -> None:
        for gauge in (metrics.upstream_healthy, metrics.upstream_outstanding):
            try:
                gauge.remove(self.model, self.url)
            except KeyError:
                pass


class UpstreamPool:
    def __init__(self, model: str, settings: ModelSettings, health: HealthSettings, metrics: Metrics,
                 resolver: Resolver = resolve_addresses):
        self.model = model
        urls = settings.upstreams
        self._router = (routing.PrefixRouter(settings.routing_load_factor, settings.routing_index_blocks)
                        if settings.routing == "prefix_affinity" else None)
        self._block_bytes = settings.routing_block_tokens * routing.CHARS_PER_TOKEN
        self._decisions = {decision: metrics.routing_decisions.labels(model, decision) for decision in routing.DECISIONS}
        self._health = health
        self._metrics = metrics
        self._resolver = resolver
        self._targets: list[tuple[str, str, int]] = []  # (scheme, hostname, port)
        for url in urls:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            assert parts.hostname, "checked when the config was parsed"
            self._targets.append((parts.scheme, parts.hostname, port))
        self.endpoints: list[Endpoint] = []
        self._picks = 0  # counts picks; ties go to the endpoint chosen longest ago
        self._build({t: [t[1]] for t in self._targets if is_ip_literal(t[1])})
        # Computed at scrape time: a cool-down ends by the clock, not by an event that could set it.
        metrics.model_healthy_upstreams.labels(model).set_function(self.healthy_count)

    @property
    def needs_dns(self) -> bool:
        return any(not is_ip_literal(host) for _, host, _ in self._targets)

    def _build(self, addresses: dict[tuple, list[str]]) -> None:
        known = {(e.target, e.address): e for e in self.endpoints}
        endpoints = []
        for target in self._targets:
            for address in addresses.get(target, []):
                endpoint = known.pop((target, address), None)
                endpoints.append(endpoint or Endpoint(self.model, target, address, self._metrics))
        for gone in known.values():
            gone.forget(self._metrics)
        self.endpoints = endpoints
        if self._router is not None:
            self._router.forget_except({e.url for e in endpoints})

    async def refresh(self) -> None:
        """Re-resolve DNS names; a name that fails to resolve keeps its previous addresses."""
        addresses: dict[tuple, list[str]] = {}
        for target in self._targets:
            _, hostname, port = target
            if is_ip_literal(hostname):
                addresses[target] = [hostname]
                continue
            try:
                addresses[target] = await self._resolver(hostname, port)
            except OSError as exc:
                log.warning("cannot resolve upstream %s for model %s (%s): keeping the last addresses",
                            hostname, self.model, exc)
                addresses[target] = [e.address for e in self.endpoints if e.target == target]
        self._build(addresses)

    def healthy_count(self) -> int:
        now = time.monotonic()
        return sum(1 for e in self.endpoints if e.healthy(now))

    def has_healthy(self) -> bool:
        now = time.monotonic()
        return any(e.healthy(now) for e in self.endpoints)

    def prefix_key(self, path: str, payload: dict) -> routing.PrefixKey | None:
        """What prefix-affinity routing goes by, for the routes it serves; None: least outstanding.

        None with a single address too: there is nothing to choose, so the prompt is not hashed.
        """
        if self._router is None or len(self.endpoints) < 2 or path not in routing.PREFIX_ROUTES:
            return None
        rendered = routing.prompt_text(path, payload, self._block_bytes * routing.MAX_BLOCKS)
        if rendered is None:
            return None
        return routing.prefix_key(rendered[0], rendered[1], self._block_bytes)

    def pick(self, exclude: set[Endpoint], key: routing.PrefixKey | None = None) -> Endpoint | None:
        """The endpoint for a request: by its prefix when it has a key, else the fewest in flight.

        Healthy ones first. When every address is cooling down they are all tried anyway:
        passive health must not turn a short blip of a single-replica model into a
        cool-down-long outage.
        """
        candidates = [e for e in self.endpoints if e not in exclude]
        if not candidates:
            return None
        now = time.monotonic()
        healthy = [e for e in candidates if e.healthy(now)] or candidates
        if key is not None and self._router is not None:
            replica, decision = self._router.choose(healthy, key)
            self._decisions[decision].inc()
            chosen: Endpoint = replica  # type: ignore[assignment]  # choose() returns one of `healthy`
        else:
            # Equal loads take turns, as nginx least_conn does ("tried in turn",
            # https://nginx.org/en/docs/http/ngx_http_upstream_module.html#least_conn). A turn kept
            # per endpoint, not a rotating start index: with one replica busy, a rotation over all
            # three handed the other two unequal shares of the ties.
            chosen = min(healthy, key=lambda e: (e.outstanding, e.last_pick))
            if self._router is not None:
                self._decisions[routing.LEAST_OUTSTANDING].inc()
        self._picks += 1
        chosen.last_pick = self._picks
        return chosen

    def record_failure(self, endpoint: Endpoint) -> None:
        endpoint.record_failure(self._health)
