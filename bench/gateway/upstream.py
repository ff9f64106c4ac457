"""Benchmark upstream: an OpenAI-compatible stand-in for vLLM that answers at once.

Model `bench` streams `max_tokens` chunks 5 ms apart; model `bench-idle` sends its first chunk at
once and then one a second (for holding many streams open). As vLLM does, a stream asked for
`include_usage` ends with a usage chunk, and with `continuous_usage_stats` too every chunk carries
the usage so far (the gateway asks for both).

On this machine it shares a core with the proxy under test, which a vLLM server on its own GPU
node never does, so it spends as little CPU as it can: a raw asyncio protocol with httptools (no
aiohttp), pre-encoded chunks, and one timer per chunk instead of a coroutine per stream
(docs/performance.md, run 13). Run: python -m bench.gateway.upstream PORT
"""

from __future__ import annotations

import asyncio
import json
import sys

import httptools
import uvloop

GAPS_S = {"bench": 0.005, "bench-idle": 1.0}
_REPLY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
    "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
}).encode()
REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(_REPLY), _REPLY)
STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def _event(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"  # compact, as vLLM sends them


def _chunk(model: str, delta: dict, finish: str | None = None) -> bytes:
    return _event({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


CHUNKS = {model: (_chunk(model, {"role": "assistant", "content": ""}), _chunk(model, {"content": "x"}),
                  _chunk(model, {}, "stop")) for model in GAPS_S}
_USAGE = b',"usage":{"prompt_tokens":8,"total_tokens":%d,"completion_tokens":%d}}\n\n'


def _with_usage(chunk: bytes, completion_tokens: int) -> bytes:
    """The chunk with vLLM's cumulative usage on it (continuous_usage_stats), in vLLM's compact form."""
    return chunk[:-3] + _USAGE % (8 + completion_tokens, completion_tokens)


def _framed(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def stream_events(model: str, tokens: int, usage: bool, continuous: bool) -> list[bytes]:
    """The events of one stream, in order, each framed as one HTTP chunk."""
    first, token, last = CHUNKS[model]
    events = [_with_usage(first, 0) if continuous else first]
    events += [_with_usage(token, sent) if continuous else token for sent in range(1, tokens + 1)]
    events.append(_with_usage(last, tokens) if continuous else last)
    if usage:
        events.append(_event({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": tokens, "total_tokens": 8 + tokens},
        }))
    events.append(b"data: [DONE]\n\n")
    return [_framed(event) for event in events]


class BenchUpstream(asyncio.Protocol):
    """One client connection: requests one at a time (keep-alive), streams written on timers."""

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._body: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._transport.write(_BAD_REQUEST)
            self._transport.close()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body = json.loads(b"".join(self._body) or b"{}")
        self._body = []
        if not body.get("stream"):
            self._transport.write(REPLY)
            return
        model = body.get("model") if body.get("model") in GAPS_S else "bench"
        options = body.get("stream_options") or {}
        usage = bool(options.get("include_usage"))
        tokens = int(body.get("max_tokens") or 16)
        events = stream_events(model, tokens, usage, usage and bool(options.get("continuous_usage_stats")))
        self._transport.write(STREAM_HEAD + events[0])
        if tokens:
            self._later(events, 1, tokens, GAPS_S[model])
        else:
            self._send(events, 1, tokens, GAPS_S[model])

    def _later(self, events: list[bytes], at: int, tokens: int, gap_s: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(gap_s, self._send, events, at, tokens, gap_s)

    def _send(self, events: list[bytes], at: int, tokens: int, gap_s: float) -> None:
        """Token chunk `at`, `gap_s` after the one before; after the last token, the rest at once,
        each event written on its own as vLLM writes them."""
        self._timer = None
        if self._transport.is_closing():
            return
        if at < tokens:
            self._transport.write(events[at])
            self._later(events, at + 1, tokens, gap_s)
            return
        for event in events[at:]:
            self._transport.write(event)
        self._transport.write(b"0\r\n\r\n")


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(BenchUpstream, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
