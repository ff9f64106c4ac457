"""Whether a request is a stream and what usage its client asked for, read exactly as vLLM 0.32
reads it, and the body sent upstream so that every stream reports its tokens as it goes.

vLLM's request fields are pydantic `bool | None` in lax mode (V = site-packages/vllm:
V/entrypoints/openai/chat_completion/protocol.py:240-241, completion/protocol.py:68-69,
V/entrypoints/generate/base/protocol.py:293-295): `true`, `1`, `1.0`, `"true"`, `"yes"`, `"on"`,
`"1"`, `"t"`, `"y"` (any case) are true; `false`, `0`, `"no"`, `"off"`, ... and null are false;
anything else (`2`, `""`, `"banana"`, `[]`) is a 400. A gateway reading them any other way
would relay a stream as one reply and count nothing, or drop the usage chunk a client asked
for, so the same pydantic rules decide here, and a value vLLM refuses is refused here with 400.

Usage in a stream comes only with `include_usage` (V/entrypoints/serve/utils/api_utils.py:289-301),
and per chunk, cumulative, only with `continuous_usage_stats` too. The gateway asks for both on
every stream: the final usage chunk gives the tokens, and the per-chunk usage what was relayed
when a stream ends early. What the client did not ask for is taken out on the way back (gateway/sse.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from . import forms
from .routes import Streams

_LAX_BOOL: TypeAdapter[bool | None] = TypeAdapter(bool | None)
_LAX_INT: TypeAdapter[int | None] = TypeAdapter(int | None)
_USAGE_OPTIONS = {"include_usage": True, "continuous_usage_stats": True}
_APPENDED_OPTIONS = b',"stream_options":{"include_usage":true,"continuous_usage_stats":true}}'
_JSON_SPACE = b" \t\r\n"
# The form fields of the audio routes (V/entrypoints/speech_to_text/transcription/protocol.py:107-114).
FORM_FIELDS = frozenset(("model", "stream", "stream_include_usage", "stream_continuous_usage_stats"))
_FORM_USAGE_FIELDS = {"stream_include_usage": "true", "stream_continuous_usage_stats": "true"}


class BadField(ValueError):
    """A stream field vLLM would refuse with 400."""

    def __init__(self, param: str):
        super().__init__(f"'{param}' must be a boolean (true, false, 1, 0, \"true\", \"no\", ... as vLLM reads it)")
        self.param = param


@dataclass(slots=True)
class StreamPlan:
    """How one stream is asked for upstream and relayed back."""

    body: bytes  # the request body sent upstream
    usage_chunk: bool = True  # the client asked for the final usage chunk
    chunk_usage: bool = True  # the client asked for usage on every chunk
    responses: bool = False  # a Responses API stream: usage in `response.completed` only
    choices_per_prompt: int = 1  # `n`: choice i of a stream answers prompt i // n
    one_choice: bool = False  # one prompt and n=1: every chunk is of choice 0


def lax_bool(value: object, param: str) -> bool:
    """`value` as vLLM's pydantic reads a `bool | None` field; BadField where vLLM answers 400."""
    if value is True or value is False or value is None:  # nearly every request
        return value is True
    try:
        return _LAX_BOOL.validate_python(value) is True
    except ValidationError:
        raise BadField(param) from None


def plan(streams: Streams, payload: dict, body: bytes, content_type: str) -> StreamPlan | None:
    """The plan for a stream, or None when the request is not one (its body then goes as it came)."""
    if streams is Streams.STREAM_OPTIONS:
        return _stream_options(payload, body)
    if streams is Streams.RESPONSES:
        return StreamPlan(body, responses=True) if lax_bool(payload.get("stream"), "stream") else None
    if streams is Streams.FORM:
        return _form(payload, body, content_type)
    return None


def _stream_options(payload: dict, body: bytes) -> StreamPlan | None:
    if not lax_bool(payload.get("stream"), "stream"):
        # vLLM itself refuses stream_options without a stream (chat protocol.py:820-832); the
        # body goes as it came, so the gateway's reading cannot differ from vLLM's.
        return None
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadField("stream_options")
    options = options or {}
    usage = lax_bool(options.get("include_usage"), "stream_options.include_usage")
    # Without include_usage vLLM ignores continuous_usage_stats, but still validates it.
    chunk_usage = lax_bool(options.get("continuous_usage_stats"), "stream_options.continuous_usage_stats") and usage
    n = _choices(payload.get("n"))
    stream = StreamPlan(body, usage, chunk_usage, choices_per_prompt=n,
                        one_choice=n == 1 and _one_prompt(payload))
    if not chunk_usage:
        stream.body = _ask_for_usage(body, payload, options)
    return stream


def _choices(n: object) -> int:
    """`n` as vLLM's pydantic reads it (`"2"` is 2); 1 where it is absent, or invalid (vLLM then answers 400)."""
    if type(n) is int:
        return n if n > 0 else 1
    if n is None:
        return 1
    try:
        value = _LAX_INT.validate_python(n)
    except ValidationError:
        return 1
    return value if value is not None and value > 0 else 1


def _one_prompt(payload: dict) -> bool:
    """Completions' `prompt` is one prompt (a string, or token ids), or a list of several (strings or
    lists of token ids; vLLM refuses a mix). `prompt_embeds` (with --enable-prompt-embeds) adds
    prompts of its own before them (V/renderers/online_renderer.py, preprocess_completion), so a
    request with any is taken as several. Chat has neither: one conversation."""
    if payload.get("prompt_embeds") is not None:
        return False
    prompt = payload.get("prompt")
    return not isinstance(prompt, list) or len(prompt) <= 1 or isinstance(prompt[0], int)


def _ask_for_usage(body: bytes, payload: dict, options: dict) -> bytes:
    """The request body with `stream_options.include_usage` and `.continuous_usage_stats` true."""
    if "stream_options" not in payload:
        # Appending the member to the client's own bytes costs far less than re-encoding the
        # payload and leaves the rest of the body byte for byte as sent. Only for a body that is
        # plainly `{...}` in UTF-8 (json.loads also accepts UTF-16/32); the object is not empty,
        # it has a model, and has no top-level stream_options, so no key is duplicated.
        stripped = body.rstrip(_JSON_SPACE)
        if stripped.endswith(b"}") and body.lstrip(_JSON_SPACE).startswith(b"{"):
            return stripped[:-1] + _APPENDED_OPTIONS
    payload["stream_options"] = {**options, **_USAGE_OPTIONS}
    return json.dumps(payload).encode()


def _form(fields: dict, body: bytes, content_type: str) -> StreamPlan | None:
    # A form field sent empty counts as not sent (FastAPI: fastapi/dependencies/utils.py, _get_multidict_value).
    def flag(name: str) -> bool:
        return lax_bool(fields.get(name) or None, name)

    if not flag("stream"):
        return None
    usage = flag("stream_include_usage")
    chunk_usage = flag("stream_continuous_usage_stats") and usage
    stream = StreamPlan(body, usage, chunk_usage)
    boundary = forms.boundary(content_type)
    if not chunk_usage and boundary is not None:
        # Starlette keeps a field's last value, so these override the client's own.
        stream.body = forms.with_fields(body, boundary, _FORM_USAGE_FIELDS) or body
    return stream
