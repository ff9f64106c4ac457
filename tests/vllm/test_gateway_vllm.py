"""The gateway in front of vLLM's own server: what works straight to vLLM works through the gateway,
the gateway counts exactly the tokens vLLM reports, and it holds the keys on both sides."""

from __future__ import annotations

import time
from dataclasses import dataclass

import openai
import pytest

from tests.gateway.harness import GatewayProcess
from tests.vllm.server import CLIENT, CLIENT_KEY, MODEL, START_TIMEOUT_S, VllmServer

# The first test also waits for vLLM to come up (the session fixture), within START_TIMEOUT_S.
pytestmark = [pytest.mark.vllm, pytest.mark.timeout(START_TIMEOUT_S + 60)]

MESSAGES = [{"role": "user", "content": "hello world"}]
PROMPT = "the quick brown fox"
MAX_TOKENS = 8
# vLLM's own request fields. ignore_eos: random weights may pick the end-of-sequence token at any
# step, so every reply is max_tokens long. return_token_ids: each chunk says its tokens, as
# chunks do not count them (vLLM merges the tokens of several steps into one chunk when its HTTP
# side falls behind the engine).
EXTRA_BODY = {"ignore_eos": True, "return_token_ids": True}


@dataclass
class Route:
    """An openai client straight to vLLM, or through the gateway (which then counts tokens)."""

    client: openai.OpenAI
    gateway: GatewayProcess | None = None

    def tokens(self) -> dict[str, float]:
        if self.gateway is None:
            return {}
        return {direction: self.gateway.metric("gateway_tokens_total", client=CLIENT, model=MODEL, direction=direction)
                for direction in ("in", "out")}

    def check_usage(self, before: dict[str, float], usage) -> None:
        """vLLM reports the prompt and MAX_TOKENS generated; the gateway's counters moved by exactly that."""
        assert usage.completion_tokens == MAX_TOKENS
        assert usage.prompt_tokens > 0
        if self.gateway is None:
            return
        for direction, reported in (("in", usage.prompt_tokens), ("out", usage.completion_tokens)):
            expected = before[direction] + reported
            counted = self.gateway.wait_for_metric("gateway_tokens_total", expected, client=CLIENT, model=MODEL,
                                                   direction=direction)
            assert counted == expected, f"{direction}: vLLM reported {reported}, the gateway counted {counted - before[direction]}"


@pytest.fixture(params=["direct", "gateway"])
def route(request) -> Route:
    if request.param == "direct":
        return Route(request.getfixturevalue("vllm").client())
    gateway = request.getfixturevalue("gateway")
    return Route(gateway.client(CLIENT_KEY), gateway)


def test_chat_completion(route):
    before = route.tokens()
    reply = route.client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, extra_body=EXTRA_BODY)
    assert reply.model == MODEL
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == "length"
    route.check_usage(before, reply.usage)


def test_chat_stream_with_usage(route):
    before = route.tokens()
    chunks = list(route.client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True, stream_options={"include_usage": True},
        extra_body=EXTRA_BODY))
    *content, usage_chunk = chunks
    # A role chunk, the tokens, then the usage chunk the client asked for.
    assert content[0].choices[0].delta.role == "assistant"
    assert len(_token_ids(chunk.model_dump() for chunk in content)) == MAX_TOKENS
    assert content[-1].choices[0].finish_reason == "length"
    assert all(chunk.usage is None for chunk in content)
    assert usage_chunk.choices == []
    route.check_usage(before, usage_chunk.usage)


def test_completion(route):
    before = route.tokens()
    reply = route.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=MAX_TOKENS, extra_body=EXTRA_BODY)
    assert reply.model == MODEL
    assert reply.choices[0].finish_reason == "length"
    route.check_usage(before, reply.usage)


def test_models(route):
    assert [model.id for model in route.client.models.list()] == [MODEL]


def test_wrong_client_key_is_refused_before_vllm(gateway: GatewayProcess, vllm: VllmServer):
    def logged() -> int:
        return vllm.requests_logged("POST", "/v1/chat/completions")

    seen = logged()
    with pytest.raises(openai.AuthenticationError) as refused:
        gateway.client("sk-test-wrong").chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1)
    assert refused.value.status_code == 401
    assert refused.value.code == "invalid_api_key"  # the gateway's error: vLLM's 401 has no code
    # vLLM logs the 401s it gives too: the same call straight to it adds one line, and only one.
    with pytest.raises(openai.AuthenticationError):
        vllm.client("sk-test-wrong").chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1)
    assert _wait_for(logged, seen + 1) == seen + 1


def test_gateway_sends_vllms_key(gateway: GatewayProcess, vllm: VllmServer):
    with pytest.raises(openai.AuthenticationError) as refused:
        vllm.client(CLIENT_KEY).completions.create(model=MODEL, prompt=PROMPT, max_tokens=1)
    assert refused.value.body == "Unauthorized"  # vLLM's own 401: {"error": "Unauthorized"}
    reply = gateway.client(CLIENT_KEY).completions.create(model=MODEL, prompt=PROMPT, max_tokens=1)
    assert reply.usage.completion_tokens == 1


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_stream_through_gateway_equals_vllms(gateway: GatewayProcess, vllm: VllmServer, endpoint):
    """Greedy decoding with a seed gives the same tokens twice; the gateway must relay them unchanged.

    Compared: the token ids, the text, the finish reasons, the prompt's token ids and the usage
    chunk (but its id and creation time). Not the chunk boundaries: they are vLLM's timing (EXTRA_BODY).
    """

    def stream(client: openai.OpenAI) -> dict:
        options = {"model": MODEL, "max_tokens": 24, "temperature": 0, "seed": 7, "stream": True,
                   "stream_options": {"include_usage": True}, "extra_body": EXTRA_BODY}
        if endpoint == "chat":
            chunks = [chunk.model_dump() for chunk in client.chat.completions.create(messages=MESSAGES, **options)]
            text = [choice["delta"]["content"] for chunk in chunks for choice in chunk["choices"]]
        else:
            chunks = [chunk.model_dump() for chunk in client.completions.create(prompt=PROMPT, **options)]
            text = [choice["text"] for chunk in chunks for choice in chunk["choices"]]
        choices = [choice for chunk in chunks for choice in chunk["choices"]]
        return {"token_ids": _token_ids(chunks), "text": "".join(part or "" for part in text),
                "finish_reasons": [choice["finish_reason"] for choice in choices if choice["finish_reason"]],
                "prompt_token_ids": [ids for item in chunks + choices if (ids := item.get("prompt_token_ids"))],
                "usage_chunk": {key: value for key, value in chunks[-1].items() if key not in ("id", "created")}}

    direct = stream(vllm.client())
    through = stream(gateway.client(CLIENT_KEY))
    assert len(direct["token_ids"]) == 24
    assert direct["prompt_token_ids"]
    assert direct["usage_chunk"]["usage"]["completion_tokens"] == 24
    assert through == direct


def _token_ids(chunks) -> list[int]:
    """The generated token ids of a stream's chunks (model_dump()s), in order."""
    return [token for chunk in chunks for choice in chunk["choices"] for token in choice.get("token_ids") or []]


def _wait_for(read, value: float, timeout_s: float = 2.0) -> float:
    """What `read` returns once it equals `value`, or after `timeout_s`: vLLM counts after its reply."""
    deadline = time.monotonic() + timeout_s
    while (current := read()) != value and time.monotonic() < deadline:
        time.sleep(0.05)
    return current
