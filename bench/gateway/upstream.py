"""Benchmark upstream: an OpenAI-compatible stand-in for vLLM that answers at once.

Model `bench` streams `max_tokens` chunks 5 ms apart; model `bench-idle` sends its first chunk at
once and then one a second (for holding many streams open). Run: python -m bench.gateway.upstream PORT
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
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _chunk(model: str, delta: dict, finish: str | None = None) -> bytes:
    return _event({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


# Pre-encoded, so the upstream spends as little of the shared core as it can on each chunk.
CHUNKS = {model: (_chunk(model, {"role": "assistant", "content": ""}), _chunk(model, {"content": "x"}),
                  _chunk(model, {}, "stop")) for model in GAPS_S}


async def completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if not body.get("stream"):
        return web.Response(body=REPLY, content_type="application/json")
    model = body.get("model") if body.get("model") in GAPS_S else "bench"
    gap = GAPS_S[model]
    first, token, last = CHUNKS[model]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    try:
        await response.write(first)
        tokens = int(body.get("max_tokens") or 16)
        for _ in range(tokens):
            await asyncio.sleep(gap)
            await response.write(token)
        await response.write(last)
        if (body.get("stream_options") or {}).get("include_usage"):
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
