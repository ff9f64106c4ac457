"""Forwarding one authorised request to an upstream and relaying the reply.

The upstream is chosen here from configuration only; the request body goes upstream unchanged
except for `stream_options.include_usage` on streams, and the only headers sent are the content
type, the Host of the configured upstream and that model's own upstream key.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import aiohttp
from aiohttp import web

from . import errors
from .limits import ClientLimits
from .metrics import CLIENT_CLOSED, Metrics, Outcome
from .upstreams import Endpoint, UpstreamPool

_USAGE = re.compile(rb'"usage"\s*:\s*\{')
# A plain substring test is several times cheaper than the regex and rules out almost every
# streamed chunk; the regex then only runs on the final usage chunk.
_USAGE_KEY = b'"usage"'
_INCLUDE_USAGE = b',"stream_options":{"include_usage":true}}'
_JSON_SPACE = b" \t\r\n"
_EVENT_END = re.compile(rb"\r?\n\r?\n")
# Replies with these statuses count against the upstream's passive health.
_UNHEALTHY_STATUSES = frozenset((502, 503, 504))


class Forwarder:
    def __init__(self, session: aiohttp.ClientSession, metrics: Metrics, upstream_keys: dict[str, str]):
        self._session = session
        self._metrics = metrics
        self._auth_headers = {model: f"Bearer {key}" for model, key in upstream_keys.items()}

    async def forward(self, request: web.Request, limits: ClientLimits, pool: UpstreamPool,
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
        tried: set[Endpoint] = set()
        while True:
            endpoint = pool.pick(tried)
            if endpoint is None:
                return errors.upstream_unreachable(model) if tried else errors.no_upstream(model)
            tried.add(endpoint)
            endpoint.acquire()
            try:
                upstream = await self._session.post(
                    endpoint.url + request.path, data=body, headers=self._headers(model, endpoint),
                    server_hostname=endpoint.tls_name)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
                # Nothing reached this upstream, so another one may safely take the request.
                endpoint.release()
                pool.record_failure(endpoint)
                continue
            except asyncio.TimeoutError:
                endpoint.release()
                pool.record_failure(endpoint)
                return errors.upstream_timeout(model)
            except aiohttp.ClientError:
                endpoint.release()
                pool.record_failure(endpoint)
                return errors.upstream_failed(model)
            except BaseException:
                endpoint.release()
                raise
            break

        try:
            if upstream.status in _UNHEALTHY_STATUSES:
                pool.record_failure(endpoint)
            else:
                endpoint.record_success()
            if stream and upstream.status == 200:
                response, upstream_broke = await self._relay_stream(
                    request, upstream, client_wants_usage, started, model, outcome)
                if upstream_broke:
                    pool.record_failure(endpoint)
                return response
            return await self._relay_body(upstream, outcome)
        except asyncio.TimeoutError:
            pool.record_failure(endpoint)
            return errors.upstream_timeout(model)
        except aiohttp.ClientError:
            pool.record_failure(endpoint)
            return errors.upstream_failed(model)
        finally:
            # Closing (rather than releasing) an unfinished reply drops the upstream connection,
            # which is how vLLM learns that nobody is waiting and stops generating.
            upstream.close()
            endpoint.release()
            limits.charge_tokens(outcome.prompt_tokens + outcome.completion_tokens)

    def _headers(self, model: str, endpoint: Endpoint) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if model in self._auth_headers:
            headers["Authorization"] = self._auth_headers[model]
        if endpoint.host_header:
            headers["Host"] = endpoint.host_header
        return headers

    async def _relay_body(self, upstream: aiohttp.ClientResponse, outcome: Outcome) -> web.Response:
        body = await upstream.read()
        if upstream.status == 200 and _USAGE.search(body):
            try:
                outcome.add_usage(json.loads(body).get("usage"))
            except (ValueError, AttributeError):
                pass  # not JSON after all: relayed as it is, just not counted
        return web.Response(status=upstream.status, body=body,
                            headers={"Content-Type": upstream.headers.get("Content-Type", "application/json")})

    async def _relay_stream(self, request: web.Request, upstream: aiohttp.ClientResponse, client_wants_usage: bool,
                            started: float, model: str, outcome: Outcome) -> tuple[web.StreamResponse, bool]:
        """Relay SSE events as they arrive; returns the response and whether the upstream broke off."""
        response = web.StreamResponse(status=200, headers={
            "Content-Type": upstream.headers.get("Content-Type", "text/event-stream"),
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        })
        # Every relayed chunk goes through this loop: write to the payload writer prepare()
        # returns (one coroutine layer less than response.write) and keep lookups out of it.
        write = (await response.prepare(request)).write
        outcome.status = 200
        pending = b""
        readany = upstream.content.readany
        try:
            data = await readany()
            self._metrics.child(self._metrics.ttft, model).observe(time.monotonic() - started)
            while data:
                if pending:
                    data = pending + data
                if data.endswith(b"\n\n"):  # the usual case: whole events, as vLLM writes them
                    complete, pending = data, b""
                else:
                    # A partial event is useless to the client: hold it back until its end arrives.
                    end = _complete_events_end(data)
                    complete, pending = data[:end], data[end:]
                if _USAGE_KEY in complete and _USAGE.search(complete):
                    complete = _take_usage(complete, client_wants_usage, outcome)
                if complete:
                    await write(complete)
                data = await readany()
            if pending:
                await write(pending)
        except ConnectionResetError:  # writing to a client that has gone
            outcome.status = CLIENT_CLOSED
            return response, False
        except (asyncio.TimeoutError, aiohttp.ClientError):
            # Headers are sent, so the reply cannot become an error any more; ending it without
            # the final chunk makes the client see a failure instead of a short answer.
            if request.transport is not None:
                request.transport.abort()
            outcome.status = 502
            return response, True
        return response, False


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


def _complete_events_end(data: bytes) -> int:
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def _take_usage(events: bytes, client_wants_usage: bool, outcome: Outcome) -> bytes:
    """Count the usage in these SSE events; drop the usage-only chunk if the client did not ask for it."""
    kept = []
    position = 0
    for boundary in _EVENT_END.finditer(events):
        event = events[position:boundary.end()]
        position = boundary.end()
        if _USAGE.search(event):
            try:
                chunk = json.loads(event.strip().removeprefix(b"data:"))
            except ValueError:
                chunk = None
            if isinstance(chunk, dict):
                outcome.add_usage(chunk.get("usage"))
                if not client_wants_usage and chunk.get("choices") == []:
                    continue
        kept.append(event)
    kept.append(events[position:])
    return b"".join(kept)

