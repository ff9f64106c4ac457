"""The HTTP side: routes, the order of checks on each request, CORS, readiness and drain."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from typing import TYPE_CHECKING

from aiohttp import HttpVersion11, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import errors, forms
from .auth import Client, KeyRing
from .config import GatewayConfig, ResolvedSecrets
from .limits import LIMIT_KEYS, ClientLimits
from .logs import OUTCOME, PROBE_PATHS, REQUEST_ID
from .metrics import UNKNOWN, Metrics, Outcome
from .proxy import Forwarder
from .routes import PROXIED, Streams
from .stream_request import FORM_FIELDS
from .upstream_client import UpstreamClient
from .upstreams import UpstreamPool

if TYPE_CHECKING:
    from .shared_limits import LimitStore, SharedClientLimits

log = logging.getLogger("gateway")

# Headers a browser may read from our replies (the SDKs look at Retry-After on 429).
_EXPOSED_HEADERS = "Retry-After, X-Request-Id"
_PREFLIGHT_MAX_AGE = "600"
# A preflight's answer depends on these request headers (the last is echoed), so caches must key on them.
_PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
# Header names a preflight may ask for, echoed back only when they are plainly that.
_HEADER_NAMES = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")
_API_PATHS = frozenset((*PROXIED, "/v1/models"))
# The methods of each path the gateway serves, for 405 and OPTIONS (aiohttp adds HEAD to a GET route).
_POST, _GET = "OPTIONS, POST", "GET, HEAD, OPTIONS"
_ALLOWED = {**dict.fromkeys(PROXIED, _POST), **dict.fromkeys(("/v1/models", *PROBE_PATHS), _GET)}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# vLLM's uvicorn closes idle connections after 5 s; dropping ours first avoids sending a
# request on a connection the upstream is closing at that moment (it could not be retried).
_UPSTREAM_IDLE_S = 4.0


class GatewayApp:
    """The HTTP application: routes, checks, CORS, drain; one per process."""

    def __init__(self, config: GatewayConfig, secrets: ResolvedSecrets):
        self.config = config
        self.metrics = Metrics(limit_store=config.shared_limits is not None)
        self.keyring = KeyRing([
            Client(name=c.name, key_hash=secrets.client_hashes[c.name].encode("ascii"),
                   models=frozenset(c.models), rpm=c.rpm, tpm=c.tpm)
            for c in config.clients
        ])
        self.limits = {c.name: ClientLimits(c.rpm, c.tpm) for c in config.clients}
        # With shared_limits, the store decides (and self.limits is not used).
        self.limit_store: LimitStore | None = None
        self.shared_limits: dict[str, SharedClientLimits] = {}
        if config.shared_limits is not None:
            # Imported only here: redis-py takes a sixth of a second to import.
            from .shared_limits import LimitStore

            assert secrets.limit_store_url is not None, "resolve_secrets() reads it"
            self.limit_store = LimitStore(config.shared_limits, secrets.limit_store_url, secrets.limit_store_password,
                                          self.metrics)
            self.shared_limits = self.limit_store.client_limits(config.clients)
        self.pools = {name: UpstreamPool(name, m, config.health, self.metrics)
                      for name, m in config.models.items()}
        self._upstream_keys = secrets.upstream_keys
        self._cors_origins = frozenset(config.cors_origins)
        self._forwarder: Forwarder | None = None
        self.draining = False
        self.in_flight = 0
        # Read at scrape time, so requests only touch a plain int (no lock, no metric call).
        self.metrics.in_flight.set_function(lambda: self.in_flight)

    # --- application -------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body_bytes)
        for path in PROXIED:
            app.router.add_post(path, self.inference, expect_handler=_continue_later)
        app.router.add_get("/v1/models", self.list_models)
        liveness, readiness, health = PROBE_PATHS
        app.router.add_get(liveness, self.healthz)
        app.router.add_get(readiness, self.readyz)
        app.router.add_get(health, self.readyz)  # vLLM's /health: 200 while it can serve
        app.router.add_route("OPTIONS", "/{path:.*}", self.preflight)
        app.router.add_route("*", "/{path:.*}", self.unknown_path)
        app.on_response_prepare.append(self._on_prepare)
        app.cleanup_ctx.append(self._upstream_client)
        if self.limit_store is not None:
            app.cleanup_ctx.append(self._limit_store)
        return app

    def make_metrics_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.serve_metrics)
        return app

    async def _upstream_client(self, app: web.Application):
        client = UpstreamClient(connect_timeout_s=self.config.upstream_connect_timeout_s,
                                read_timeout_s=self.config.upstream_read_timeout_s, idle_s=_UPSTREAM_IDLE_S)
        try:
            self._forwarder = Forwarder(client, self.metrics, self._upstream_keys, self.config.edge_first_byte_timeout_s)
            dns_pools = [pool for pool in self.pools.values() if pool.needs_dns]
            refresher = None
            if dns_pools:
                await asyncio.gather(*(pool.refresh() for pool in dns_pools))
                refresher = asyncio.create_task(self._refresh_dns(dns_pools))
            yield
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher
        finally:
            client.close()

    async def _limit_store(self, app: web.Application):
        assert self.limit_store is not None, "only set up with shared_limits"
        await self.limit_store.start()
        yield
        await self.limit_store.close()

    async def _refresh_dns(self, pools: list[UpstreamPool]) -> None:
        while True:
            await asyncio.sleep(self.config.upstream_dns_refresh_s)
            await asyncio.gather(*(pool.refresh() for pool in pools))

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        headers["Server"] = errors.SERVER
        headers["X-Request-Id"] = request[REQUEST_ID]
        origin = request.headers.get("Origin")
        if origin is not None and origin in self._cors_origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS
        if self._cors_origins and "Vary" not in headers:  # a preflight's names more
            headers["Vary"] = "Origin"
        if self.draining:
            # Tell keep-alive callers to reconnect, which lands them on a replica that stays.
            # (The hook runs after aiohttp wrote its own headers, hence the explicit one.)
            response.force_close()
            response.headers["Connection"] = "close"

    def start_drain(self) -> None:
        self.draining = True
        self.metrics.draining.set(1)

    # --- proxied API -------------------------------------------------------------------

    async def inference(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        outcome = request[OUTCOME] = Outcome(request.path)  # one of PROXIED: the route matched it
        self.in_flight += 1
        try:
            response = await self._inference(request, outcome)
            if not outcome.status:
                outcome.status = response.status
            return response
        except asyncio.CancelledError:
            outcome.client_left()
            raise
        except Exception:
            outcome.status = 500  # aiohttp answers 500; the metrics must not say "0"
            raise
        finally:
            self.in_flight -= 1
            self.metrics.record(outcome, time.monotonic() - started)

    async def _inference(self, request: web.Request, outcome: Outcome) -> web.StreamResponse:
        # Cheapest checks first, and the key before anything that reads the body.
        client = self.keyring.authenticate(request.headers.get("Authorization"))
        if client is None:
            return _refused_before_the_body(request, errors.unauthorized())
        outcome.client = client.name
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        payload = _parse_payload(request, body)
        if isinstance(payload, web.Response):
            return payload
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            return errors.bad_request("The request body needs a 'model' string (a form field of that name on the "
                                      "audio routes).", "missing_model")
        pool = self.pools.get(model)
        if pool is None:
            return errors.unknown_model(model)
        outcome.model = model
        if not client.may_use(model):
            return errors.forbidden_model(model)
        limits: ClientLimits | SharedClientLimits
        if self.limit_store is None:
            limits = self.limits[client.name]
            refused = limits.admit()
        else:
            limits = self.shared_limits[client.name]
            refused = await limits.admit()
        if refused is not None:
            self.metrics.child(self.metrics.rate_limited, client.name, LIMIT_KEYS[refused[0]]).inc()
            return errors.rate_limited(*refused)
        assert self._forwarder is not None, "set up before the app serves (cleanup_ctx)"
        try:
            return await self._forwarder.forward(request, limits, pool, payload, body, outcome)
        except RecursionError:  # re-encoding a body json.loads only just managed to parse
            return errors.bad_request("The request body's JSON is nested too deeply.", "invalid_json")

    async def _read_body(self, request: web.Request) -> bytes | web.Response:
        """The body, or the error reply: too large (413) or too slow (408)."""
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return _refused_before_the_body(request, errors.too_large(limit))
        timeout = self.config.client_body_timeout_s
        try:
            if request.content.is_eof():  # the body came with the head: no timer needed (it costs µs)
                return await request.read()
            # Only now may a client that asked first send its body: refusals above cost it nothing.
            await _continue_if_expected(request)
            async with asyncio.timeout(timeout):
                return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return errors.too_large(limit)
        except TimeoutError:
            response = errors.request_timeout(timeout)
            response.force_close()  # the rest of the body is not worth waiting for
            return response

    async def list_models(self, request: web.Request) -> web.Response:
        outcome = request[OUTCOME] = Outcome("/v1/models")
        client = self.keyring.authenticate(request.headers.get("Authorization"))
        if client is None:
            return errors.unauthorized()
        outcome.client = client.name
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "llm-edge"}
                for name in self.pools if client.may_use(name)]
        return web.json_response({"object": "list", "data": data})

    # --- probes, CORS preflight, metrics -----------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.draining:
            return web.json_response({"status": "draining"}, status=503)
        if not any(pool.has_healthy() for pool in self.pools.values()):
            return web.json_response({"status": "no healthy upstream"}, status=503)
        return web.json_response({"status": "ready"})

    async def preflight(self, request: web.Request) -> web.Response:
        """Answered here, never forwarded: only configured origins get the CORS grant."""
        request[OUTCOME] = Outcome(request.path if request.path in _API_PATHS else UNKNOWN)
        origin = request.headers.get("Origin")
        if origin is None:  # not a CORS request: what the path allows
            allowed = _ALLOWED.get(request.path)
            if allowed is None:
                return errors.not_found(request.path)
            return web.Response(status=204, headers={"Allow": allowed, "Vary": _PREFLIGHT_VARY})
        if origin not in self._cors_origins:
            return errors.error_response(403, "Origin not allowed.", "invalid_request_error", "origin_not_allowed",
                                         headers={"Vary": _PREFLIGHT_VARY})
        headers = {
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Max-Age": _PREFLIGHT_MAX_AGE,
            "Vary": _PREFLIGHT_VARY,
        }
        requested = request.headers.get("Access-Control-Request-Headers")
        if requested and _HEADER_NAMES.fullmatch(requested):
            # The browser SDKs send their own x-stainless-* headers; the origin check is the gate.
            headers["Access-Control-Allow-Headers"] = requested
        return web.Response(status=204, headers=headers)

    async def unknown_path(self, request: web.Request) -> web.Response:
        request[OUTCOME] = Outcome()
        allowed = _ALLOWED.get(request.path)
        return errors.not_found(request.path) if allowed is None else errors.method_not_allowed(allowed)

    async def serve_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _parse_payload(request: web.Request, body: bytes) -> dict | web.Response:
    """The JSON object of the body; for the audio routes, the form fields the gateway reads."""
    if PROXIED[request.path] is Streams.FORM:
        boundary = forms.boundary(request.headers.get("Content-Type", ""))
        if boundary is None:
            return errors.bad_request("This endpoint takes a multipart/form-data body.", "invalid_form")
        return forms.text_fields(body, boundary, FORM_FIELDS)
    try:
        payload = json.loads(body)
    except ValueError:
        return errors.bad_request("The request body is not valid JSON.", "invalid_json")
    except RecursionError:
        return errors.bad_request("The request body's JSON is nested too deeply.", "invalid_json")
    if not isinstance(payload, dict):
        return errors.bad_request("The request body must be a JSON object.", "invalid_json")
    return payload


async def _continue_later(request: web.Request) -> None:
    """Expect handler of the inference routes: `100 Continue` waits for the key and size checks."""
    expect = request.headers.get("Expect", "")
    if expect.lower() != "100-continue":
        raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")


async def _continue_if_expected(request: web.Request) -> None:
    if request.version == HttpVersion11 and request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(_CONTINUE)
        request.writer.output_size = 0  # the reply proper has not started (as aiohttp's own handler does)


def _refused_before_the_body(request: web.Request, response: web.Response) -> web.Response:
    # A client waiting for 100 Continue will not send its body; the connection cannot carry
    # another request after a body that never came.
    if request.headers.get("Expect"):
        response.force_close()
    return response
