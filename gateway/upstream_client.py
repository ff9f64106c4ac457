"""HTTP/1.1 to the upstreams: keep-alive connections over asyncio protocols, replies read by
httptools (llhttp, the parser uvicorn uses).

Why not aiohttp's client: a relayed stream chunk cost about 30 µs of Python there (a dozen calls,
a task wake-up and a read-timer re-arm per chunk), and on a shared core that queued up into the
first-chunk time of new streams. Here a chunk goes from the upstream's socket to the sink in one
callback, and the read timeout is one watchdog timer per request (docs/performance.md).

One connection carries one request at a time, by the rules nginx, HAProxy and Envoy follow: a
reply is delivered only to the request it answers; a byte beyond a complete reply, or one arriving
while no request is waiting, discards the connection (it cannot be told which request it belongs
to); so do a parse error, an upgrade and an HTTP/1.0 reply. Finished connections wait, reading,
in a per-address idle list (newest first) and are closed after `idle_s`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import cast

import httptools

# A sink takes each piece of the reply body as it arrives; True asks for the reading to pause
# until `drain()` returns (the client is slower than the upstream). It may raise UpstreamError
# (e.g. an event larger than the relay allows), which ends the exchange as broken.
Sink = Callable[[bytes], bool]

# Body bytes held before a sink takes them: read_body() replies up to this size, and what a
# streamed reply sends between its head and the start of relay(). Beyond it reading pauses.
MAX_BUFFERED_BODY = 1 << 20
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# The reply headers kept besides Content-Type (and Content-Length and Transfer-Encoding, which only
# frame the reply here), for the gateway to pass on: what describes the body or says when to retry.
# Never hop-by-hop headers, Server, Set-Cookie, Vary or CORS headers: those are the gateway's own.
KEPT_HEADERS = frozenset((b"content-encoding", b"content-language", b"content-disposition", b"retry-after"))


class UpstreamError(Exception):
    """The exchange with an upstream failed."""


class NotConnected(UpstreamError):
    """No connection could be made, so the request reached no upstream (safe to try another)."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not connect, answer or send more within its timeout."""


class UpstreamBroken(UpstreamError):
    """The connection ended, or carried something that is not HTTP, before the reply was complete."""


class _BeyondTheReply(Exception):
    """Raised inside the parser when bytes follow a complete reply: they stop the parsing there."""


class UpstreamConnection(asyncio.Protocol):
    """One TCP (or TLS) connection to one upstream address, and the exchange it is carrying."""

    def __init__(self, address: tuple) -> None:
        self.address = address
        self._loop = asyncio.get_running_loop()
        # Set by connection_made, which asyncio calls before any other method.
        self._transport: asyncio.Transport = None  # type: ignore[assignment]
        self._parser = httptools.HttpResponseParser(self)
        self._idle_timer: asyncio.TimerHandle | None = None
        # Bytes came that no request asked for: the connection is never used again.
        self._spoiled = False
        self._start_exchange(0.0)
        self._complete = True  # until a request is sent, any byte from the upstream is one too many

    def _start_exchange(self, read_timeout_s: float) -> None:
        self.status = 0
        self.content_type: str | None = None
        self.content_length: int | None = None
        self.headers: list[tuple[str, str]] = []  # those of KEPT_HEADERS the reply has
        self._framed = False  # Content-Length or chunked: otherwise the body ends with the connection
        self._body: list[bytes] = []
        self._buffered = 0
        self._sink: Sink | None = None
        self._paused = False
        self._complete = False
        self._keep_alive = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future | None = None
        self._read_timeout_s = read_timeout_s
        self._last_read = self._loop.time()
        self._watchdog = self._loop.call_later(read_timeout_s, self._check_idle) if read_timeout_s else None

    # --- the exchange, as the forwarder sees it -------------------------------------------

    def send(self, request: bytes, read_timeout_s: float) -> None:
        self._start_exchange(read_timeout_s)
        self._transport.write(request)

    async def read_head(self) -> None:
        while not self.status:
            await self._wait()

    async def read_body(self) -> bytes:
        """The whole body of a reply known to be at most MAX_BUFFERED_BODY long."""
        while not self._complete:
            if self._paused:
                raise UpstreamBroken(f"the reply is longer than the {MAX_BUFFERED_BODY} bytes that can be held")
            await self._wait()
        return b"".join(self._body)

    async def relay(self, sink: Sink, drain: Callable[[], Awaitable[None]]) -> None:
        """Hand every body piece to `sink` as it arrives, until the reply is complete."""
        self._sink = sink
        early, self._body, self._buffered = self._body, [], 0
        for piece in early:  # pieces that came with the head
            self.on_body(piece)
        while True:
            if self._paused:
                await drain()
                self._last_read = self._loop.time()
                # Even after the reply's end: a connection that does not read cannot be pooled.
                self._resume_reading()
            if self._complete:
                return
            await self._wait()

    @property
    def reusable(self) -> bool:
        return (self._complete and self._keep_alive and self._error is None and not self._spoiled
                and not self._transport.is_closing())

    def close(self) -> None:
        """Drop the connection at once; an upstream mid-reply sees it and stops (vLLM stops generating)."""
        self._cancel_timers()
        if self._transport is not None:  # a connection that was never made has no transport
            self._transport.abort()

    def park(self, idle_s: float, on_expiry: Callable[[UpstreamConnection], None]) -> None:
        self._cancel_timers()
        self._sink = None
        # An idle connection must read, or it never sees the next reply (nor a stray byte).
        self._resume_reading()
        self._idle_timer = self._loop.call_later(idle_s, on_expiry, self)

    def unpark(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._transport.resume_reading()

    async def _wait(self) -> None:
        if self._error is None:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self._error is None and not self._complete:
            self._error = error
            self._cancel_timers()
            self._wake()

    def _cancel_timers(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self.unpark()

    def _check_idle(self) -> None:
        # Reads only note the time; this timer runs once per timeout period, not once per chunk.
        idle = self._loop.time() - self._last_read
        if self._paused or idle < self._read_timeout_s:
            remaining = self._read_timeout_s if self._paused else self._read_timeout_s - idle
            self._watchdog = self._loop.call_later(remaining, self._check_idle)
            return
        self._watchdog = None
        self._fail(UpstreamTimeout(f"no data from the upstream for {self._read_timeout_s:g}s"))
        self._transport.abort()

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not a subclass of asyncio.Transport, so no isinstance check).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._complete:
            self._spoil()  # nothing was asked: a stray reply, or the rest of one already delivered
            return
        self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _BeyondTheReply):
                self._spoil()
            elif isinstance(exc.__context__, UpstreamError):
                self._fail(exc.__context__)  # the sink's verdict on the reply
                self._transport.abort()
            else:
                raise
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self._complete:
                self._spoil()  # e.g. bytes after a reply that said Connection: close
            else:
                self._fail(UpstreamBroken(f"the upstream's reply is not valid HTTP/1.1 ({exc})"))
                self._transport.abort()

    def _spoil(self) -> None:
        self._spoiled = True
        self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        # The idle timer stays: it takes a parked connection that the upstream closed off the list.
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self.status and not self._framed and not self._complete and exc is None:
            self.on_message_complete()  # a body without a length ends with the connection
            self._keep_alive = False
        self._fail(UpstreamBroken("the upstream closed the connection before the reply was complete"))

    # --- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:
            raise _BeyondTheReply()  # a second reply to one request

    def on_status(self, reason: bytes) -> None:
        # llhttp lets control characters through in the reason phrase; RFC 9112 does not.
        if _CONTROL.search(reason):
            raise UpstreamBroken("the upstream's status line holds control characters")

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type":
            self.content_type = value.decode("latin-1")
        elif name == b"content-length":
            self._framed = True
            self.content_length = int(value) if value.isdigit() else None  # llhttp checks it; this only sizes buffers
        elif name == b"transfer-encoding":
            # llhttp frames a reply whose coding is not chunked by the connection's end (and a 204 or
            # 304 not at all), so such a reply could still be delivered; nothing here decodes other
            # codings, and neither does h11 accept them.
            if value.strip().lower() != b"chunked":
                raise UpstreamBroken("the upstream's Transfer-Encoding is not chunked")
            self._framed = True
        elif name in KEPT_HEADERS:
            self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status == 101:
            # Nothing asked for an upgrade; what follows would not be HTTP.
            raise UpstreamBroken("the upstream switched protocols (101), which no request asks for")
        if status < 200:
            return  # 1xx (e.g. 103 Early Hints): informational, the real reply follows
        self.status = status
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._sink is None:
            self._body.append(body)
            self._buffered += len(body)
            if self._buffered > MAX_BUFFERED_BODY and not self._paused:
                self._paused = True
                self._transport.pause_reading()
                self._wake()
        elif self._sink(body) and not self._paused:
            self._paused = True
            self._transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        if not self.status:
            self.content_type = None  # the end of a 1xx reply
            self.headers = []
            self._framed = False
            return
        self._complete = True
        # HTTP/1.0 keep-alive is a convention, not a rule both sides can be held to.
        self._keep_alive = self._parser.should_keep_alive() and self._parser.get_http_version() == "1.1"
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._wake()


class UpstreamClient:
    """Connections to upstream addresses, reused while they stay idle for less than `idle_s`."""

    def __init__(self, connect_timeout_s: float, read_timeout_s: float, idle_s: float,
                 tls: ssl.SSLContext | None = None) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._idle_s = idle_s
        self._idle: dict[tuple, list[UpstreamConnection]] = {}
        # Default: the system's CAs (or SSL_CERT_FILE / SSL_CERT_DIR), names and expiry checked.
        self._tls = tls

    async def send(self, address: tuple, request: bytes) -> UpstreamConnection:
        """Send one request and wait for the head of its reply.

        `address` is (host, port, tls_name or None for plain HTTP). Raises NotConnected when the
        request went nowhere, UpstreamTimeout or UpstreamBroken when it may have reached the upstream.
        """
        connection = self._take_idle(address) or await self._connect(address)
        connection.send(request, self._read_timeout_s)
        try:
            await connection.read_head()
        except BaseException:
            connection.close()
            raise
        return connection

    def release(self, connection: UpstreamConnection) -> None:
        """Keep a connection whose reply was read to the end; drop any other."""
        if not connection.reusable:
            connection.close()
            return
        connection.park(self._idle_s, self._expire)
        self._idle.setdefault(connection.address, []).append(connection)

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _take_idle(self, address: tuple) -> UpstreamConnection | None:
        connections = self._idle.get(address)
        while connections:
            connection = connections.pop()
            connection.unpark()
            if connection.reusable:
                return connection
            connection.close()
        return None

    def _expire(self, connection: UpstreamConnection) -> None:
        connections = self._idle.get(connection.address)
        if connections and connection in connections:
            connections.remove(connection)
        connection.close()

    async def _connect(self, address: tuple) -> UpstreamConnection:
        host, port, tls_name = address
        tls = None
        if tls_name is not None:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(
                    lambda: UpstreamConnection(address), host, port, ssl=tls,
                    server_hostname=tls_name if tls is not None else None)
        except TimeoutError:
            raise NotConnected(f"connecting to {host}:{port} took longer than {self._connect_timeout_s:g}s") from None
        except (OSError, ssl.SSLError) as exc:
            raise NotConnected(f"cannot connect to {host}:{port}: {exc}") from None
        return connection
