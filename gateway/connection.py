"""One client connection on the API port: aiohttp's request handling, plus the limits a server
facing the internet needs and aiohttp does not enforce.

- A request head must be complete within client_header_timeout_s, counted from the connection's
  start or from the first byte of a later request (slowloris); then 408 and close.
- A client whose buffer stays full, taking nothing, for client_write_timeout_s is cut; its
  handler is cancelled, and with it the upstream request (vLLM stops generating).
- Idle keep-alive connections close after client_keepalive_timeout_s (aiohttp's own timer).
- Only HTTP/1.x: another major version gets 505.
- A malformed request gets an OpenAI-shaped 400 naming the parser's reason, never aiohttp's ERROR
  log line, which quotes the raw bytes (an `Authorization :` header with its key, for one).
- Every request gets its id (the client's X-Request-Id if it passes logs.RequestIds' check,
  else a new one), returned in X-Request-Id on every reply; every request but the probes gets
  one access line with it (gateway/logs.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from . import errors
from .config import GatewayConfig
from .logs import OUTCOME, PROBE_PATHS, REQUEST_ID, AccessLog, RequestIds
from .metrics import CLIENT_CLOSED

log = logging.getLogger("gateway.connection")

# The parser's own reason ("Invalid header value char") is safe to show; anything else in its
# message may be the client's bytes.
_PLAIN_REASON = re.compile(r"[A-Za-z0-9 ,.()/_-]{1,120}")


class ClientConnection(web.RequestHandler):
    __slots__ = ("_config", "_on_closed", "_request_ids", "_access_log", "_awaiting_head", "_head_timer", "_write_timer",
                 "_unsent_at_check")

    def __init__(self, manager: web.Server, config: GatewayConfig, request_ids: RequestIds, access_log: AccessLog,
                 on_closed: Callable[[ClientConnection], None], loop: asyncio.AbstractEventLoop):
        # access_log=None: aiohttp writes no access line of its own (it accepts None, unlike its type hint).
        super().__init__(manager, loop=loop, keepalive_timeout=config.client_keepalive_timeout_s,
                         access_log=None)  # type: ignore[arg-type]
        self._config = config
        self._request_ids = request_ids
        self._access_log = access_log
        self._on_closed = on_closed
        self._awaiting_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._unsent_at_check = 0

    # --- head timeout -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head and self._head_timer is None:
            self._arm_head_timer()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)

    def _arm_head_timer(self) -> None:
        self._head_timer = self._loop.call_later(self._config.client_header_timeout_s, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._awaiting_head or self.transport is None:
            return
        timeout = self._config.client_header_timeout_s
        request_id = self._request_ids.take(None)
        self._access_log.write(request_id, "", 408, timeout, None)
        self.transport.write(errors.raw_reply(
            408, f"The request head did not arrive within {timeout:g}s.", "request_timeout", request_id))
        self.force_close()

    # --- write timeout ------------------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None and self.transport is not None:
            self._unsent_at_check = self.transport.get_write_buffer_size()
            self._write_timer = self._loop.call_later(self._config.client_write_timeout_s, self._check_writes)

    def resume_writing(self) -> None:
        self._cancel_write_timer()
        super().resume_writing()

    def _check_writes(self) -> None:
        # Runs once per timeout period while writing is paused, not on every write.
        self._write_timer = None
        if self.transport is None or not self.writing_paused:
            return
        unsent = self.transport.get_write_buffer_size()
        if unsent < self._unsent_at_check:  # the client took something: give it another period
            self._unsent_at_check = unsent
            self._write_timer = self._loop.call_later(self._config.client_write_timeout_s, self._check_writes)
            return
        self.transport.abort()  # connection_lost cancels the handler, which drops the upstream request

    def _cancel_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._cancel_write_timer()
        self._on_closed(self)
        super().connection_lost(exc)

    def stop(self) -> None:
        """For the drain: close now if no request is being handled, else after its reply."""
        if self._awaiting_head:
            self.force_close()
        else:
            self.close()

    # --- each request -------------------------------------------------------------------------

    async def _handle_request(self, request: web.BaseRequest, start_time: float | None,
                              request_handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
                              ) -> tuple[web.StreamResponse, bool]:
        self._awaiting_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if request.version.major != 1:
            request_handler = _version_not_supported
        started = time.monotonic()  # uvloop's loop.time() counts whole milliseconds
        request_id = request[REQUEST_ID] = self._request_ids.take(request.headers.get("X-Request-Id"))
        status = CLIENT_CLOSED  # unless a response is returned
        try:
            response, reset = await super()._handle_request(request, start_time, request_handler)
            status = response.status
            return response, reset
        finally:
            self._awaiting_head = True
            outcome = request.get(OUTCOME)
            if outcome is not None and outcome.status:
                status = outcome.status  # e.g. a stream that went out as 200 and broke off (502)
            if request.path not in PROBE_PATHS:
                self._access_log.write(request_id, request.method, status, time.monotonic() - started, outcome)

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse, or to a handler that raised."""
        if status >= 500:
            log.error("error while handling a request", exc_info=exc)  # a fault of the gateway's, not the client's
        if request.writer.output_size > 0:
            raise ConnectionError("the reply had started; it cannot become an error reply")
        if status == 400:
            response = errors.malformed_request(_reason(exc))
        else:
            response = errors.internal_error()
        return _closing(request, response)


async def _version_not_supported(request: web.BaseRequest) -> web.StreamResponse:
    return _closing(request, errors.http_version_not_supported())


def _closing(request: web.BaseRequest, response: web.Response) -> web.Response:
    # Not an application's request: its on_response_prepare, which sets X-Request-Id, does not run.
    response.headers["X-Request-Id"] = request[REQUEST_ID]
    response.force_close()
    return response


def _reason(exc: BaseException | None) -> str:
    message = getattr(exc, "message", "")
    reason = message.split(":\n", 1)[0].strip() if isinstance(message, str) else ""
    return reason if _PLAIN_REASON.fullmatch(reason) else type(exc).__name__
