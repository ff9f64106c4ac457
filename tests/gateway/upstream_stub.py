"""A local OpenAI-compatible upstream (the part of vLLM's API the gateway relays), with replicas.

Every replica records what reached it (path, headers, body) and which of its streams were cut
off by the caller, so tests can see the gateway's effect on the upstream side. Its streams have
vLLM 0.32's shape (tests/vllm checks the real one): compact JSON, `system_fingerprint` on the
finish chunk, or on the final usage chunk with `include_usage`, cumulative usage on every chunk
with `continuous_usage_stats` too.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDict
from pydantic import TypeAdapter, ValidationError

PROMPT_TOKENS = 5
FINGERPRINT = "vllm-stub-0"
# The audio routes' form fields (vLLM: V/entrypoints/speech_to_text/transcription/protocol.py).
AUDIO_PATHS = ("/v1/audio/transcriptions", "/v1/audio/translations")


@dataclass
class Seen:
    replica: str
    path: str
    headers: CIMultiDict[str]  # as sent, looked up without regard to case
    body: dict


@dataclass
class Behaviour:
    """Knobs a test turns; read by every replica on every request."""

    chunks: int = 3  # content chunks in a stream (one token each)
    chunk_delay_s: float = 0.0
    first_chunk_delay_s: float = 0.0  # between the stream's headers and its first event (prefill)
    reply_delay_s: float = 0.0  # before a non-streaming reply
    end_delay_s: float = 0.0  # between a stream's [DONE] and the end of its body
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)  # added to every reply
    echo_authorization: bool = False  # error replies quote the Authorization header they got
    # Per-replica overrides, by replica name.
    replica_delay_s: dict[str, float] = field(default_factory=dict)
    replica_status: dict[str, int] = field(default_factory=dict)


@dataclass
class StubState:
    behaviour: Behaviour = field(default_factory=Behaviour)
    seen: list[Seen] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)  # replica names whose reply the caller cut off
    completed_streams: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        self.behaviour = Behaviour()
        self.seen.clear()
        self.cancelled.clear()
        self.completed_streams = 0

    def count(self, replica: str) -> int:
        return sum(1 for s in self.seen if s.replica == replica)


def _usage(completion_tokens: int) -> dict:
    return {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": completion_tokens,
            "total_tokens": PROMPT_TOKENS + completion_tokens}


def _event(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


_LAX_BOOL: TypeAdapter[bool | None] = TypeAdapter(bool | None)


def _truthy(value: object) -> bool:
    """vLLM's `bool | None` fields are pydantic's, in lax mode (what it refuses counts as false here)."""
    try:
        return _LAX_BOOL.validate_python(value or None) is True
    except ValidationError:
        return False


class Replica:
    def __init__(self, name: str, state: StubState):
        self.name = name
        self.state = state
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", *AUDIO_PATHS):
            app.router.add_post(path, self._handle)
        # shutdown_timeout=0: stopping a replica cuts its in-flight requests, like a killed process.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def kill(self) -> None:
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path in AUDIO_PATHS:
            body = {name: value for name, value in (await request.post()).items() if isinstance(value, str)}
        else:
            body = await request.json()
        state = self.state
        state.seen.append(Seen(self.name, request.path, CIMultiDict(request.headers), body))
        state.in_flight[self.name] = state.in_flight.get(self.name, 0) + 1
        try:
            behaviour = state.behaviour
            status = behaviour.replica_status.get(self.name, behaviour.status)
            if status != 200:
                message = f"stub failure; you sent {request.headers.get('Authorization')}" if behaviour.echo_authorization \
                    else "stub failure"
                return web.json_response({"error": {"message": message, "type": "server_error", "param": None,
                                                    "code": None}}, status=status, headers=behaviour.headers)
            if _truthy(body.get("stream")):
                return await self._stream(request, body, behaviour)
            delay = behaviour.replica_delay_s.get(self.name, behaviour.reply_delay_s)
            if delay:
                await asyncio.sleep(delay)
                if request.transport is None or request.transport.is_closing():
                    state.cancelled.append(self.name)  # the caller gave up while this one "generated"
            return web.json_response(self._reply(request.path, body), headers=behaviour.headers)
        finally:
            state.in_flight[self.name] -= 1

    def _reply(self, path: str, body: dict) -> dict:
        model = body.get("model")
        if path in AUDIO_PATHS:
            return {"text": f"from {self.name}", "usage": {"type": "duration", "seconds": 1}}
        if path == "/v1/responses":
            return {"id": "resp_stub", "object": "response", "model": model, "status": "completed",
                    "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text",
                                                                                     "text": f"from {self.name}"}]}],
                    "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 2, "total_tokens": PROMPT_TOKENS + 2}}
        if path == "/v1/embeddings":
            return {"object": "list", "model": model, "usage": {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS},
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.25, 0.5]}]}
        if path == "/v1/completions":
            return {"id": "cmpl-stub", "object": "text_completion", "created": int(time.time()), "model": model,
                    "choices": [{"index": 0, "text": f"from {self.name}", "finish_reason": "stop", "logprobs": None}],
                    "usage": _usage(2)}
        return {"id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"from {self.name}"}}],
                "usage": _usage(2)}

    async def _stream(self, request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8", **behaviour.headers})
        await response.prepare(request)  # sends the 200 at once, before the prompt is processed, as vLLM does
        if behaviour.first_chunk_delay_s:
            await asyncio.sleep(behaviour.first_chunk_delay_s)
        if request.path == "/v1/responses":
            return await self._responses_stream(request, response, body, behaviour)
        if request.path in AUDIO_PATHS:
            include_usage, continuous = _truthy(body.get("stream_include_usage")), _truthy(
                body.get("stream_continuous_usage_stats"))
        else:
            options = body.get("stream_options") or {}
            include_usage, continuous = _truthy(options.get("include_usage")), _truthy(options.get("continuous_usage_stats"))
        continuous = continuous and include_usage
        base = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body.get("model")}

        def chunk(choice: dict, completion_tokens: int) -> bytes:
            event = {**base, "choices": [{"index": 0, **choice}]}
            if continuous:
                event["usage"] = _usage(completion_tokens)
            if choice.get("finish_reason") and not include_usage:
                event["system_fingerprint"] = FINGERPRINT
            return _event(event)

        try:
            await response.write(chunk({"delta": {"role": "assistant", "content": ""}, "finish_reason": None}, 0))
            for index in range(behaviour.chunks):
                if behaviour.chunk_delay_s:
                    await asyncio.sleep(behaviour.chunk_delay_s)
                finish = "stop" if index == behaviour.chunks - 1 else None
                await response.write(chunk({"delta": {"content": f"t{index} "}, "finish_reason": finish}, index + 1))
            if include_usage:
                await response.write(_event({**base, "choices": [], "usage": _usage(behaviour.chunks),
                                             "system_fingerprint": FINGERPRINT}))
            await response.write(b"data: [DONE]\n\n")
            if behaviour.end_delay_s:
                await asyncio.sleep(behaviour.end_delay_s)
        except (ConnectionError, asyncio.CancelledError):
            self.state.cancelled.append(self.name)
            raise
        self.state.completed_streams += 1
        return response

    async def _responses_stream(self, request: web.Request, response: web.StreamResponse, body: dict,
                                behaviour: Behaviour) -> web.StreamResponse:
        """The Responses API's events (vLLM: usage only in `response.completed`)."""
        def event(kind: str, **data) -> bytes:
            return f"event: {kind}\n".encode() + _event({**data, "type": kind})

        started = {"id": "resp_stub", "object": "response", "model": body.get("model"), "status": "in_progress",
                   "usage": None}
        try:
            await response.write(event("response.created", response=started))
            for index in range(behaviour.chunks):
                if behaviour.chunk_delay_s:
                    await asyncio.sleep(behaviour.chunk_delay_s)
                await response.write(event("response.output_text.delta", delta=f"t{index} ", output_index=0))
            usage = {"input_tokens": PROMPT_TOKENS, "output_tokens": behaviour.chunks,
                     "total_tokens": PROMPT_TOKENS + behaviour.chunks}
            await response.write(event("response.completed", response={**started, "status": "completed", "usage": usage}))
        except (ConnectionError, asyncio.CancelledError):
            self.state.cancelled.append(self.name)
            raise
        self.state.completed_streams += 1
        return response


class StubUpstream:
    """Replicas served by one event loop in a background thread, driven from synchronous tests."""

    def __init__(self) -> None:
        self.state = StubState()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="stub-upstream", daemon=True)
        self._thread.start()

    def call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def replica(self, name: str, port: int = 0) -> Replica:
        replica = Replica(name, self.state)
        self.call(replica.start(port))
        return replica

    def kill(self, replica: Replica) -> None:
        self.call(replica.kill())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
