"""Benchmark upstream: an OpenAI-compatible stand-in for vLLM that answers at once.

Model `bench` streams `max_tokens` chunks 5 ms apart; model `bench-idle` sends its first chunk at
once and then one a second (for holding many streams open). As vLLM does, a stream asked for
`include_usage` ends with a usage chunk, and with `continuous_usage_stats` too every chunk carries
the usage so far (the gateway asks for both). Run: python -m bench.gateway.upstream PORT
"""

from __future__ import annotations

import asyncio
import json
import sys

import uvloop
from aiohttp import web

GAPS_S = {"bench": 0.005, "bench-idle": 1.0}
REPLY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
    "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
}).encode()


def _event(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"  # compact, as vLLM sends them


def _chunk(model: str, delta: dict, finish: str | None = None) -> bytes:
    return _event({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


# Pre-encoded, so the upstream spends as little of the shared core as it can on each chunk.
CHUNKS = {model: (_chunk(model, {"role": "assistant", "content": ""}), _chunk(model, {"content": "x"}),
                  _chunk(model, {}, "stop")) for model in GAPS_S}
_USAGE = b',"usage":{"prompt_tokens":8,"total_tokens":%d,"completion_tokens":%d}}\n\n'


def _with_usage(chunk: bytes, completion_tokens: int) -> bytes:
    """The chunk with vLLM's cumulative usage on it (continuous_usage_stats), in vLLM's compact form."""
    return chunk[:-3] + _USAGE % (8 + completion_tokens, completion_tokens)


async def completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if not body.get("stream"):
        return web.Response(body=REPLY, content_type="application/json")
    model = body.get("model") if body.get("model") in GAPS_S else "bench"
    gap = GAPS_S[model]
    first, token, last = CHUNKS[model]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    options = body.get("stream_options") or {}
    continuous = options.get("include_usage") and options.get("continuous_usage_stats")
    try:
        await response.write(_with_usage(first, 0) if continuous else first)
        tokens = int(body.get("max_tokens") or 16)
        for sent in range(1, tokens + 1):
            await asyncio.sleep(gap)
            await response.write(_with_usage(token, sent) if continuous else token)
        await response.write(_with_usage(last, tokens) if continuous else last)
        if options.get("include_usage"):
            await response.write(_event({
                "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": model,
                "choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": tokens, "total_tokens": 8 + tokens},
            }))
        await response.write(b"data: [DONE]\n\n")
    except ConnectionResetError:
        pass
    return response


def main() -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, backlog=4096,
                loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
