"""Forwarding one authorised request to an upstream and relaying the reply.

The upstream is chosen here from configuration only; the request body goes upstream unchanged
except for the usage a stream is asked for (gateway/stream_request.py), and the only headers sent
are the client's Content-Type, the Host of the configured upstream, the request id and that model's
own upstream key. Of the reply's headers only Content-Type and upstream_client.KEPT_HEADERS come back.
An upstream error is read whole and never carries the upstream key to the client: a 401 or 403
(the gateway's own key refused) becomes the gateway's 502, other error bodies lose the key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

from aiohttp import web

from . import errors
from .limits import ClientLimits
from .logs import REQUEST_ID
from .metrics import CLIENT_CLOSED, Metrics, Outcome
from .relay import USAGE, BodyRelay, ClientGone, ClientRelay
from .routes import PROXIED
from .routing import PrefixKey
from .sse import SseRelay
from .stream_request import BadField, StreamPlan, plan
from .upstream_client import (
    MAX_BUFFERED_BODY,
    NotConnected,
    UpstreamClient,
    UpstreamConnection,
    UpstreamError,
    UpstreamTimeout,
)
from .upstreams import Endpoint, UpstreamPool

log = logging.getLogger("gateway.proxy")

if TYPE_CHECKING:
    from .shared_limits import SharedClientLimits

# Set by Cloudflare on every request it proxies (so, through the tunnel).
_CF_RAY = "Cf-Ray"
# Replies with these statuses count against the upstream's passive health.
_UNHEALTHY_STATUSES = frozenset((502, 503, 504))
# The upstream refused the gateway's own key (vLLM's 401 body is {"error": "Unauthorized"}).
_REFUSED_CREDENTIALS = frozenset((401, 403))
_REDACTED = b"[upstream key]"


class Forwarder:
    def __init__(self, client: UpstreamClient, metrics: Metrics, upstream_keys: dict[str, str],
                 edge_first_byte_timeout_s: float | None = None):
        self._client = client
        self._metrics = metrics
        self._edge_timeout_s = edge_first_byte_timeout_s
        # resolve_secrets() admits only printable ASCII without spaces: safe in a header line.
        self._auth_lines = {model: f"Authorization: Bearer {key}\r\n".encode("ascii")
                            for model, key in upstream_keys.items()}
        # The key as it is, and as a JSON string holds it, for taking it out of error bodies.
        self._keys = {model: {key.encode("ascii"), json.dumps(key)[1:-1].encode("ascii")}
                      for model, key in upstream_keys.items()}

    async def forward(self, request: web.Request, limits: ClientLimits | SharedClientLimits, pool: UpstreamPool,
                      payload: dict, body: bytes, outcome: Outcome) -> web.StreamResponse:
        model = pool.model
        prepared = self._prepare(request, model, payload, body)
        if isinstance(prepared, web.Response):
            return prepared
        stream, head, body = prepared

        key = pool.prefix_key(request.path, payload)
        started = time.monotonic()
        edge_bound = self._edge_timeout_s if stream is None and _CF_RAY in request.headers else None
        if edge_bound is None:  # no timer on the usual path: it costs microseconds a request
            sent = await self._send(request.path, pool, head, body, key)
        else:
            try:
                async with asyncio.timeout(edge_bound):
                    sent = await self._send(request.path, pool, head, body, key)
            except TimeoutError:
                # _send closed the upstream connection on the way out: vLLM sees it and stops generating.
                return errors.edge_timeout(model, edge_bound)
        if isinstance(sent, web.Response):
            return sent
        upstream, endpoint = sent

        try:
            if upstream.status in _UNHEALTHY_STATUSES:
                pool.record_failure(endpoint)
            else:
                endpoint.record_success()
            if upstream.status >= 400:
                return await self._reply_error(upstream, model)
            if stream is not None and upstream.status == 200:
                response, upstream_broke = await self._relay_stream(request, upstream, stream, started, model, outcome)
            elif upstream.content_length is not None and upstream.content_length <= MAX_BUFFERED_BODY:
                return await self._reply_whole(upstream, outcome)
            else:
                response, upstream_broke = await self._relay_body(request, upstream, outcome)
            if upstream_broke:
                pool.record_failure(endpoint)
            return response
        except UpstreamError as exc:
            pool.record_failure(endpoint)
            return _upstream_error(model, exc)
        finally:
            # An unfinished reply's connection is dropped rather than kept, which is how vLLM
            # learns that nobody is waiting and stops generating.
            self._client.release(upstream)
            endpoint.release()
            limits.charge_tokens(outcome.prompt_tokens + outcome.completion_tokens)

    def _prepare(self, request: web.Request, model: str, payload: dict,
                 body: bytes) -> tuple[StreamPlan | None, tuple[bytes, bytes, bytes], bytes] | web.Response:
        """The stream plan (None for one reply), the upstream request's head fields and its body; or a 400."""
        content_type = request.headers.get("Content-Type")
        try:
            stream = plan(PROXIED[request.path], payload, body, content_type or "")  # aiohttp matched one of PROXIED
        except BadField as refused:
            return errors.bad_request(f"{refused} (stream fields are read as vLLM reads them).", "invalid_stream_field",
                                      param=refused.param)
        # The client's Content-Type goes upstream as it came (none if it sent none), so vLLM takes or
        # refuses it as it would directly: on its JSON routes it refuses all but application/json.
        # aiohttp's parser lets no CR, LF or other control character into a header value, and
        # surrogateescape gives back the bytes it read.
        content_type_line = b"" if content_type is None else (
            b"Content-Type: " + content_type.encode("utf-8", "surrogateescape") + b"\r\n")
        head = (content_type_line, request[REQUEST_ID].encode("ascii"), self._auth_lines.get(model, b""))
        return stream, head, body if stream is None else stream.body

    async def _send(self, path: str, pool: UpstreamPool, head: tuple[bytes, bytes, bytes], body: bytes,
                    key: PrefixKey | None) -> tuple[UpstreamConnection, Endpoint] | web.Response:
        """The request sent to one of the pool's endpoints, with the head of its reply; or the error reply."""
        tried: set[Endpoint] = set()
        while True:
            endpoint = pool.pick(tried, key)
            if endpoint is None:
                return errors.upstream_unreachable(pool.model) if tried else errors.no_upstream(pool.model)
            tried.add(endpoint)
            endpoint.acquire()
            try:
                return await self._client.send(endpoint.connect_to, _request(path, endpoint, head, body)), endpoint
            except NotConnected:
                # Nothing reached this upstream, so another one may safely take the request.
                endpoint.release()
                pool.record_failure(endpoint)
            except UpstreamError as exc:
                endpoint.release()
                pool.record_failure(endpoint)
                return _upstream_error(pool.model, exc)
            except BaseException:
                endpoint.release()
                raise

    async def _reply_whole(self, upstream: UpstreamConnection, outcome: Outcome) -> web.Response:
        """A reply short enough to hold: read whole, its tokens counted, sent in one write."""
        body = await upstream.read_body()
        if upstream.status == 200 and USAGE.search(body):
            try:
                outcome.set_usage(json.loads(body).get("usage"))
            except (ValueError, AttributeError):
                pass  # not JSON after all: relayed as it is, just not counted
        return web.Response(status=upstream.status, body=body, headers=_headers(upstream))

    async def _reply_error(self, upstream: UpstreamConnection, model: str) -> web.Response:
        """An upstream error, read whole (an error body longer than MAX_BUFFERED_BODY is a 502), without the key."""
        body = await upstream.read_body()
        if upstream.status in _REFUSED_CREDENTIALS:
            log.warning("the upstream of model %s refused the gateway's key (%d): check its upstream_key_env",
                        model, upstream.status)
            return errors.upstream_auth_failed(model)
        for key in self._keys.get(model, ()):
            body = body.replace(key, _REDACTED)
        return web.Response(status=upstream.status, body=body, headers=_headers(upstream))

    async def _relay_body(self, request: web.Request, upstream: UpstreamConnection,
                          outcome: Outcome) -> tuple[web.StreamResponse, bool]:
        """A reply too long to hold, or of unknown length: relayed piece by piece as it arrives."""
        response = web.StreamResponse(status=upstream.status, headers=_headers(upstream))
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        # prepare() chose the framing: chunked for an unknown length (raw until close for HTTP/1.0).
        relay = await self._start_relay(request, response, outcome, lambda transport, writer: BodyRelay(
            transport, writer, chunked=response.headers.get("Transfer-Encoding") == "chunked"))
        if relay is None:
            return response, False
        upstream_broke = await self._relay(request, response, upstream, relay, outcome)
        if upstream.status == 200 and not upstream_broke:
            outcome.set_usage(relay.usage())
        return response, upstream_broke

    async def _relay_stream(self, request: web.Request, upstream: UpstreamConnection, stream: StreamPlan,
                            started: float, model: str, outcome: Outcome) -> tuple[web.StreamResponse, bool]:
        """Relay SSE events as they arrive; returns the response and whether the upstream broke off."""
        response = web.StreamResponse(status=200, headers=[
            ("Content-Type", upstream.content_type or "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
            *upstream.headers,
        ])
        ttft = self._metrics.child(self._metrics.ttft, model)
        relay = await self._start_relay(
            request, response, outcome, lambda transport, writer: SseRelay(
                transport, writer, stream, outcome, lambda: ttft.observe(time.monotonic() - started)))
        if relay is None:
            return response, False
        return response, await self._relay(request, response, upstream, relay, outcome)

    @staticmethod
    async def _start_relay(request: web.Request, response: web.StreamResponse, outcome: Outcome, make_relay):
        """Send the reply's head; the relay for its body, or None when the client has gone already."""
        writer = await response.prepare(request)
        outcome.status = response.status
        if request.transport is None or writer is None:
            outcome.status = CLIENT_CLOSED
            return None
        return make_relay(request.transport, writer)

    @staticmethod
    async def _relay(request: web.Request, response: web.StreamResponse, upstream: UpstreamConnection,
                     relay: ClientRelay, outcome: Outcome) -> bool:
        """Relay the body to its end; True when the upstream broke off."""
        try:
            await upstream.relay(relay.feed, relay.drain)
            relay.finish()
            await response.write_eof()
        except (ClientGone, ConnectionResetError):
            outcome.client_left()
        except UpstreamError:
            # The head is sent, so the reply cannot become an error any more; ending it without
            # its end makes the client see a failure instead of a short answer.
            if request.transport is not None:
                request.transport.abort()
            outcome.status = 502
            return True
        finally:
            relay.settle()
        return False


def _upstream_error(model: str, error: UpstreamError) -> web.Response:
    return errors.upstream_timeout(model) if isinstance(error, UpstreamTimeout) else errors.upstream_failed(model)


def _request(path: str, endpoint: Endpoint, head: tuple[bytes, bytes, bytes], body: bytes) -> bytes:
    """The request head and body: only the configured Host, the content type, the request id and the model's key."""
    # `path` is one of the gateway's fixed routes (aiohttp matched it), never free text from a client;
    # the request id passed logs.RequestIds' check.
    content_type_line, request_id, authorization = head
    return b"".join((
        b"POST ", path.encode("ascii"), b" HTTP/1.1\r\nHost: ", endpoint.host, b"\r\n", content_type_line,
        b"Content-Length: ", b"%d" % len(body), b"\r\nX-Request-Id: ", request_id, b"\r\n", authorization,
        b"\r\n", body))


def _headers(upstream: UpstreamConnection) -> list[tuple[str, str]]:
    """The reply headers passed on: Content-Type as the upstream sent it, and upstream_client.KEPT_HEADERS."""
    if upstream.content_type is None:
        return upstream.headers  # aiohttp then says application/octet-stream, as RFC 9110 section 8.3 lets a client assume
    return [("Content-Type", upstream.content_type), *upstream.headers]
