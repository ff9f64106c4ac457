"""Forwarding one authorised request to an upstream and relaying the reply.

The upstream is chosen here from configuration only; the request body goes upstream unchanged
except for `stream_options.include_usage` on streams, and the only headers sent are the content
type, the Host of the configured upstream and that model's own upstream key.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

from aiohttp import web

from . import errors
from .limits import ClientLimits
from .metrics import CLIENT_CLOSED, Metrics, Outcome
from .relay import USAGE, BodyRelay, ClientGone, ClientRelay
from .sse import SseRelay
from .upstream_client import (
    MAX_BUFFERED_BODY,
    NotConnected,
    UpstreamClient,
    UpstreamConnection,
    UpstreamError,
    UpstreamTimeout,
)
from .upstreams import Endpoint, UpstreamPool

if TYPE_CHECKING:
    from .shared_limits import SharedClientLimits

_INCLUDE_USAGE = b',"stream_options":{"include_usage":true}}'
# Set by Cloudflare on every request it proxies (so, through the tunnel).
_CF_RAY = "Cf-Ray"
_JSON_SPACE = b" \t\r\n"
# Replies with these statuses count against the upstream's passive health.
_UNHEALTHY_STATUSES = frozenset((502, 503, 504))


class Forwarder:
    def __init__(self, client: UpstreamClient, metrics: Metrics, upstream_keys: dict[str, str],
                 edge_first_byte_timeout_s: float | None = None):
        self._client = client
        self._metrics = metrics
        self._edge_timeout_s = edge_first_byte_timeout_s
        # resolve_secrets() admits only printable ASCII without spaces: safe in a header line.
        self._auth_lines = {model: f"Authorization: Bearer {key}\r\n".encode("ascii")
                            for model, key in upstream_keys.items()}

    async def forward(self, request: web.Request, limits: ClientLimits | SharedClientLimits, pool: UpstreamPool,
                      payload: dict, body: bytes, outcome: Outcome) -> web.StreamResponse:
        model = pool.model
        stream = payload.get("stream") is True
        client_wants_usage = True
        if stream:
            options = payload.get("stream_options")
            client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
            if not client_wants_usage:
                # Ask for the final usage chunk so tokens can be counted; it is dropped on the way back.
                body = _ask_for_usage(body, payload, options)

        started = time.monotonic()
        edge_bound = self._edge_timeout_s if not stream and _CF_RAY in request.headers else None
        if edge_bound is None:  # no timer on the usual path: it costs microseconds a request
            sent = await self._send(request.path, pool, body)
        else:
            try:
                async with asyncio.timeout(edge_bound):
                    sent = await self._send(request.path, pool, body)
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
            if stream and upstream.status == 200:
                response, upstream_broke = await self._relay_stream(
                    request, upstream, client_wants_usage, started, model, outcome)
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

    async def _send(self, path: str, pool: UpstreamPool, body: bytes) -> tuple[UpstreamConnection, Endpoint] | web.Response:
        """The request sent to one of the pool's endpoints, with the head of its reply; or the error reply."""
        tried: set[Endpoint] = set()
        while True:
            endpoint = pool.pick(tried)
            if endpoint is None:
                return errors.upstream_unreachable(pool.model) if tried else errors.no_upstream(pool.model)
            tried.add(endpoint)
            endpoint.acquire()
            try:
                return await self._client.send(endpoint.connect_to, self._request(path, pool.model, endpoint, body)), endpoint
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

    def _request(self, path: str, model: str, endpoint: Endpoint, body: bytes) -> bytes:
        """The request head and body: only the configured Host, the content type and the model's own key."""
        # `path` is one of the gateway's fixed routes (aiohttp matched it), never free text from a client.
        return b"".join((
            b"POST ", path.encode("ascii"), b" HTTP/1.1\r\nHost: ", endpoint.host,
            b"\r\nContent-Type: application/json\r\nContent-Length: ", b"%d" % len(body), b"\r\n",
            self._auth_lines.get(model, b""), b"\r\n", body))

    async def _reply_whole(self, upstream: UpstreamConnection, outcome: Outcome) -> web.Response:
        """A reply short enough to hold: read whole, its tokens counted, sent in one write."""
        body = await upstream.read_body()
        if upstream.status == 200 and USAGE.search(body):
            try:
                outcome.add_usage(json.loads(body).get("usage"))
            except (ValueError, AttributeError):
                pass  # not JSON after all: relayed as it is, just not counted
        return web.Response(status=upstream.status, body=body,
                            headers={"Content-Type": upstream.content_type or "application/json"})

    async def _relay_body(self, request: web.Request, upstream: UpstreamConnection,
                          outcome: Outcome) -> tuple[web.StreamResponse, bool]:
        """A reply too long to hold, or of unknown length: relayed piece by piece as it arrives."""
        response = web.StreamResponse(status=upstream.status, headers={
            "Content-Type": upstream.content_type or "application/json"})
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        # prepare() chose the framing: chunked for an unknown length (raw until close for HTTP/1.0).
        relay = await self._start_relay(request, response, outcome, lambda transport, writer: BodyRelay(
            transport, writer, chunked=response.headers.get("Transfer-Encoding") == "chunked"))
        if relay is None:
            return response, False
        upstream_broke = await self._relay(request, response, upstream, relay, outcome)
        if upstream.status == 200 and not upstream_broke:
            outcome.add_usage(relay.usage())
        return response, upstream_broke

    async def _relay_stream(self, request: web.Request, upstream: UpstreamConnection, client_wants_usage: bool,
                            started: float, model: str, outcome: Outcome) -> tuple[web.StreamResponse, bool]:
        """Relay SSE events as they arrive; returns the response and whether the upstream broke off."""
        response = web.StreamResponse(status=200, headers={
            "Content-Type": upstream.content_type or "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        })
        ttft = self._metrics.child(self._metrics.ttft, model)
        relay = await self._start_relay(
            request, response, outcome, lambda transport, writer: SseRelay(
                transport, writer, client_wants_usage, outcome, lambda: ttft.observe(time.monotonic() - started)))
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
        return False


def _upstream_error(model: str, error: UpstreamError) -> web.Response:
    return errors.upstream_timeout(model) if isinstance(error, UpstreamTimeout) else errors.upstream_failed(model)


def _ask_for_usage(body: bytes, payload: dict, options: object) -> bytes:
    """The request body with `stream_options.include_usage: true`."""
    if "stream_options" not in payload:
        # Appending the member to the client's own bytes costs far less than re-encoding the
        # payload and leaves the rest of the body byte for byte as sent. Only for a body that is
        # plainly `{...}` in UTF-8 (json.loads also accepts UTF-16/32); the object is not empty,
        # it has a model, and has no top-level stream_options, so no key is duplicated.
        stripped = body.rstrip(_JSON_SPACE)
        if stripped.endswith(b"}") and body.lstrip(_JSON_SPACE).startswith(b"{"):
            return stripped[:-1] + _INCLUDE_USAGE
    payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return json.dumps(payload).encode()
