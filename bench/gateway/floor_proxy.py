"""Benchmark reference, not a product: the least a Python proxy can do per request.

A raw httptools HTTP/1.1 server (no aiohttp) in front of the gateway's own upstream client. It
checks the key's hash and forwards; there is no routing by model, no limits, no metrics, no CORS
and no SSE processing (chunks are relayed as they come). Its numbers beside the gateway's show how
much of the gateway's cost is the aiohttp server and the features, and how much any CPython proxy
pays on this machine.

Run: python -m bench.gateway.floor_proxy PORT UPSTREAM_URL KEY_SHA256
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sys
from urllib.parse import urlsplit

import httptools
import uvloop

from gateway.upstream_client import UpstreamClient

_STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


class FloorProxy(asyncio.Protocol):
    def __init__(self, client: UpstreamClient, upstream: tuple, key_hash: bytes):
        self._client, self._upstream, self._key_hash = client, upstream, key_hash
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._reset()

    def _reset(self) -> None:
        self._url, self._body, self._authorization = b"", [], b""

    def connection_made(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._transport.close()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"authorization":
            self._authorization = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        request = (self._url, b"".join(self._body), self._authorization)
        self._reset()
        asyncio.get_running_loop().create_task(self._answer(*request))

    async def _answer(self, url: bytes, body: bytes, authorization: bytes) -> None:
        write = self._transport.write
        if url == b"/healthz":
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            return
        presented = hashlib.sha256(authorization[7:].strip()).hexdigest().encode()
        if not hmac.compare_digest(presented, self._key_hash):
            write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
            return
        request = b"".join((b"POST ", url, b" HTTP/1.1\r\nHost: upstream\r\nContent-Type: application/json\r\n"
                            b"Content-Length: ", b"%d" % len(body), b"\r\n\r\n", body))
        upstream = await self._client.send(self._upstream, request)
        try:
            if (upstream.content_type or "").startswith("text/event-stream"):
                write(_STREAM_HEAD)

                def relay(chunk: bytes) -> bool:
                    write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                    return False

                await upstream.relay(relay, None)
                write(b"0\r\n\r\n")
            else:
                reply = await upstream.read_body()
                write(b"HTTP/1.1 %d -\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                      % (upstream.status, len(reply), reply))
        finally:
            self._client.release(upstream)


async def serve(port: int, upstream_url: str, key_hash: str) -> None:
    parts = urlsplit(upstream_url)
    client = UpstreamClient(connect_timeout_s=5, read_timeout_s=300, idle_s=4)
    upstream = (parts.hostname, parts.port, None)
    server = await asyncio.get_running_loop().create_server(
        lambda: FloorProxy(client, upstream, key_hash.encode()), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
