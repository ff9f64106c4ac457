"""Relaying an upstream's reply body to the client as it arrives, without holding it whole.

The bytes go straight to the client's transport in the framing that StreamResponse.prepare()
announced (chunked, or raw after a Content-Length), one call per piece instead of aiohttp's
coroutine per write. A relay is the sink of UpstreamConnection.relay(): `feed` returns True when
the client's buffer is full, and `drain` waits until it has room again. A client that accepts
nothing for client_write_timeout_s is cut by its connection (gateway/connection.py).
"""

from __future__ import annotations

import asyncio
import json
import re

from aiohttp.abc import AbstractStreamWriter

USAGE = re.compile(rb'"usage"\s*:\s*\{')
# A reply's usage object comes last (OpenAI and vLLM put it after the choices or the data), so
# the last bytes of a long reply are enough to count its tokens.
_USAGE_TAIL_BYTES = 64 * 1024
_JSON = json.JSONDecoder()


class ClientGone(Exception):
    """The client closed its connection while its reply was being relayed."""


class ClientRelay:
    def __init__(self, transport: asyncio.Transport, writer: AbstractStreamWriter, chunked: bool):
        self._writer = writer
        self._transport = transport
        self._chunked = chunked
        self._high_water = transport.get_write_buffer_limits()[1]

    def feed(self, data: bytes) -> bool:
        """Relay what can be relayed of `data`; True when the client's buffer is full (or it has gone)."""
        raise NotImplementedError

    def finish(self) -> None:
        """The upstream's reply ended."""
        raise NotImplementedError

    def settle(self) -> None:
        """The relay is over, ended or cut: the reply's tokens are counted in its outcome."""

    async def drain(self) -> None:
        if self._transport.is_closing():
            raise ClientGone()
        await self._writer.drain()

    def _write(self, data: bytes) -> bool:
        transport = self._transport
        if transport.is_closing():
            return True  # the relay stops at its next drain()
        if data:
            transport.write(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data)
        return transport.get_write_buffer_size() > self._high_water


class BodyRelay(ClientRelay):
    """A plain (non-streamed) reply too long to hold, or of unknown length."""

    def __init__(self, transport: asyncio.Transport, writer: AbstractStreamWriter, chunked: bool):
        super().__init__(transport, writer, chunked)
        self._tail = b""

    def feed(self, data: bytes) -> bool:
        self._tail = (self._tail + data)[-_USAGE_TAIL_BYTES:]
        return self._write(data)

    def finish(self) -> None:
        if self._transport.is_closing():
            raise ClientGone()

    def usage(self) -> object:
        """The reply's top-level `usage` object, if its end holds one."""
        return usage_at_end(self._tail)


def usage_at_end(body: bytes) -> object:
    """The last `"usage": {...}` object in `body`, or None."""
    found = USAGE.match(body, body.rfind(b'"usage"'))
    if found is None:
        return None
    try:
        return _JSON.raw_decode(body[found.end() - 1:].decode("utf-8", "replace"))[0]
    except ValueError:
        return None
