"""The endpoints the gateway proxies: every OpenAI-compatible route of vLLM 0.32 whose body names a model.

vLLM mounts a route only for the tasks its model supports (a chat model has no /v1/embeddings);
the gateway routes them all by the body's `model`, and a route the model lacks answers vLLM's
own 404. Sources, in vLLM 0.32's installed package (V = site-packages/vllm):
V/entrypoints/openai/{chat_completion,completion,responses}/api_router.py,
V/entrypoints/speech_to_text/{transcription,translation}/api_router.py,
V/entrypoints/pooling/{embed,pooling,classify,scoring}/api_router.py, V/entrypoints/serve/tokenize/api_router.py.
"""

from __future__ import annotations

from enum import Enum


class Streams(Enum):
    """How a request body asks for a stream, and for usage in it, as vLLM reads it."""

    # `stream`, and `stream_options.{include_usage, continuous_usage_stats}`
    # (V/entrypoints/openai/chat_completion/protocol.py:240-241, completion/protocol.py:68-69).
    STREAM_OPTIONS = "stream_options"
    # `stream` only (V/entrypoints/openai/responses/protocol.py:258); usage comes in `response.completed`.
    RESPONSES = "responses"
    # Multipart form fields `stream`, `stream_include_usage`, `stream_continuous_usage_stats`
    # (V/entrypoints/speech_to_text/transcription/protocol.py:107-114).
    FORM = "form"
    NEVER = "never"


# path -> how it streams. All are POST; every JSON body is forwarded as it came, but for the
# usage the gateway asks a stream for (gateway/stream_request.py).
PROXIED: dict[str, Streams] = {
    "/v1/chat/completions": Streams.STREAM_OPTIONS,
    "/v1/chat/completions/batch": Streams.NEVER,  # one reply for many conversations, usage summed
    "/v1/completions": Streams.STREAM_OPTIONS,
    "/v1/embeddings": Streams.NEVER,
    "/v1/responses": Streams.RESPONSES,
    "/v1/audio/transcriptions": Streams.FORM,
    "/v1/audio/translations": Streams.FORM,
    "/tokenize": Streams.NEVER,
    "/detokenize": Streams.NEVER,
    "/pooling": Streams.NEVER,
    "/classify": Streams.NEVER,
    "/score": Streams.NEVER,
    "/v1/score": Streams.NEVER,
    "/rerank": Streams.NEVER,
    "/v1/rerank": Streams.NEVER,
    "/v2/rerank": Streams.NEVER,
}
