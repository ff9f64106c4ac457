"""The API as an OpenAI SDK caller sees it: auth, permissions, errors, streaming, usage, CORS, metrics."""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest

from tests.gateway.harness import KEYS, ORIGIN, UPSTREAM_KEY, raw
from tests.gateway.upstream_stub import PROMPT_TOKENS

MESSAGES = [{"role": "user", "content": "hi"}]


def assert_openai_error(body: bytes, code: str) -> None:
    error = json.loads(body)["error"]
    assert error["code"] == code
    assert error["message"] and error["type"]


def test_chat_plain_sync_reaches_upstream_with_its_key_not_the_clients(gateway, stub):
    reply = gateway.client().chat.completions.create(model="chat", messages=MESSAGES)
    assert reply.choices[0].message.content.startswith("from c")
    seen = stub.state.seen[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert KEYS["full"] not in json.dumps(dict(seen.headers))


def test_model_without_upstream_key_gets_no_authorization_header(gateway, stub):
    gateway.client().chat.completions.create(model="other", messages=MESSAGES)
    assert "Authorization" not in stub.state.seen[-1].headers


def test_completions_and_embeddings(gateway):
    client = gateway.client()
    assert client.completions.create(model="chat", prompt="hi").choices[0].text.startswith("from c")
    assert client.embeddings.create(model="chat", input="hi").data[0].embedding == [0.25, 0.5]


def test_stream_sync_without_usage_request_drops_the_usage_chunk(gateway, stub):
    chunks = list(gateway.client().chat.completions.create(model="chat", messages=MESSAGES, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "t0 t1 t2 "
    assert all(c.choices for c in chunks), "usage-only chunk must not reach a client that did not ask for it"
    # ...but the upstream was asked for it (and for usage on every chunk), so the gateway could count tokens.
    assert stub.state.seen[-1].body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}


def test_stream_async_with_usage_request_keeps_the_usage_chunk(gateway, stub):
    async def run():
        client = gateway.async_client()
        stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True,
                                                      stream_options={"include_usage": True})
        return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 3
    assert chunks[-1].usage.prompt_tokens == PROMPT_TOKENS


def test_plain_async(gateway):
    async def run():
        return await gateway.async_client().chat.completions.create(model="chat", messages=MESSAGES)

    assert asyncio.run(run()).usage.completion_tokens == 2


def test_streamed_chunks_are_relayed_as_they_come(gateway, stub):
    stub.state.behaviour.chunks = 4
    stub.state.behaviour.chunk_delay_s = 0.3  # a buffering relay would show gaps near 0
    arrivals = []
    for chunk in gateway.client().chat.completions.create(model="chat", messages=MESSAGES, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert len(gaps) == 3 and all(gap > 0.1 for gap in gaps), gaps


def test_stream_headers_reach_the_client_before_the_first_chunk(gateway, stub):
    stub.state.behaviour.first_chunk_delay_s = 1.0
    client = gateway.client()
    started = time.monotonic()
    stream = client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    headers_after = time.monotonic() - started  # the SDK returns once the response head is in
    chunks = list(stream)
    first_chunk_after = time.monotonic() - started
    assert headers_after < 0.6, "the 200 and its headers did not wait for the first chunk"
    assert first_chunk_after >= 0.95
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "t0 t1 t2 "


def test_missing_and_wrong_key_are_401(gateway, stub):
    with pytest.raises(openai.AuthenticationError) as caught:
        gateway.client(key="sk-wrong").chat.completions.create(model="chat", messages=MESSAGES)
    assert caught.value.code == "invalid_api_key"
    status, _, body = raw(gateway, "/v1/chat/completions", b'{"model": "chat"}')
    assert status == 401
    assert_openai_error(body, "invalid_api_key")
    status, _, _ = raw(gateway, "/v1/models")
    assert status == 401
    assert stub.state.seen == []


def test_key_hash_from_environment_variable(gateway):
    client = gateway.client(key=KEYS["from-env"])
    assert client.chat.completions.create(model="other", messages=MESSAGES).choices[0].message.content == "from o0"


def test_model_not_allowed_for_key_is_403(gateway, stub):
    with pytest.raises(openai.PermissionDeniedError) as caught:
        gateway.client(key=KEYS["chat-only"]).chat.completions.create(model="other", messages=MESSAGES)
    assert caught.value.code == "model_not_allowed"
    assert stub.state.seen == []


# A 64-byte key whose 64-bit xxh3 hash is that of "model": orjson 3.13's key cache, which matches
# keys by that hash alone, reads it as "model" (orjson src/deserialize/pyobject.rs, get_unicode_key),
# so a key allowed only "chat" could name another model. The gateway reads bodies with json.
MODEL_HASH_TWIN = "elbciihbrtpbbfktystagllkshdvguvismfgodutfhucmbmwfroljgstduzufsow"


def test_a_key_hashing_like_model_does_not_change_the_model_read(gateway, stub):
    body = json.dumps({"model": "other", MODEL_HASH_TWIN: "chat", "messages": MESSAGES}).encode()
    status, _, reply = raw(gateway, "/v1/chat/completions", body,
                           headers={"Authorization": f"Bearer {KEYS['chat-only']}", "Content-Type": "application/json"})
    assert status == 403
    assert_openai_error(reply, "model_not_allowed")
    assert stub.state.seen == []


def test_unknown_model_is_404(gateway, stub):
    with pytest.raises(openai.NotFoundError) as caught:
        gateway.client().chat.completions.create(model="gpt-17", messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    assert stub.state.seen == []


def test_unknown_path_is_openai_shaped_404(gateway):
    status, _, body = raw(gateway, "/v1/files", headers={"Authorization": f"Bearer {KEYS['full']}"})
    assert status == 404
    assert_openai_error(body, "unknown_url")


@pytest.mark.parametrize("body, code", [
    (b'{"model": "chat", "messages": [', "invalid_json"),
    (b"\xff\xfe", "invalid_json"),
    (b'["chat"]', "invalid_json"),
    (b'{"messages": []}', "missing_model"),
])
def test_malformed_body_is_400(gateway, stub, body, code):
    status, _, reply = raw(gateway, "/v1/chat/completions", body,
                           headers={"Authorization": f"Bearer {KEYS['full']}", "Content-Type": "application/json"})
    assert status == 400
    assert_openai_error(reply, code)
    assert stub.state.seen == []


def test_oversized_body_is_413(gateway, stub):
    big = "x" * (64 * 1024)
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.client().chat.completions.create(model="chat", messages=[{"role": "user", "content": big}])
    assert caught.value.status_code == 413
    assert caught.value.code == "request_too_large"
    assert stub.state.seen == []


def test_models_list_is_filtered_per_key(gateway):
    assert sorted(m.id for m in gateway.client().models.list()) == ["chat", "other"]
    assert [m.id for m in gateway.client(key=KEYS["chat-only"]).models.list()] == ["chat"]
    assert [m.id for m in gateway.client(key=KEYS["from-env"]).models.list()] == ["other"]


def test_upstream_5xx_is_relayed_with_its_status(gateway, stub):
    stub.state.behaviour.status = 500
    with pytest.raises(openai.InternalServerError):
        gateway.client().chat.completions.create(model="other", messages=MESSAGES)


def test_cors_allowed_origin_gets_its_origin_back(gateway):
    status, headers, _ = raw(gateway, "/v1/models", headers={"Authorization": f"Bearer {KEYS['full']}",
                                                             "Origin": ORIGIN})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Access-Control-Allow-Credentials" not in headers


def test_cors_other_origin_gets_no_grant(gateway):
    _, headers, _ = raw(gateway, "/v1/models", headers={"Authorization": f"Bearer {KEYS['full']}",
                                                        "Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in headers


def test_cors_preflight_is_answered_without_the_upstream(gateway, stub):
    status, headers, _ = raw(gateway, "/v1/chat/completions", method="OPTIONS", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "authorization" in headers["Access-Control-Allow-Headers"]
    status, headers, _ = raw(gateway, "/v1/chat/completions", method="OPTIONS", headers={
        "Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"})
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers
    assert stub.state.seen == []


def test_probes(gateway):
    assert raw(gateway, "/healthz")[0] == 200
    assert raw(gateway, "/readyz")[0] == 200


def test_metrics_count_requests_and_tokens_per_client_and_model(gateway):
    before_ok = gateway.metric("gateway_requests_total", client="chat-only", model="chat", status="200")
    before_403 = gateway.metric("gateway_requests_total", client="chat-only", model="other", status="403")
    before_in = gateway.metric("gateway_tokens_total", client="chat-only", model="chat", direction="in")
    before_out = gateway.metric("gateway_tokens_total", client="chat-only", model="chat", direction="out")
    client = gateway.client(key=KEYS["chat-only"])
    client.chat.completions.create(model="chat", messages=MESSAGES)  # 2 completion tokens
    list(client.chat.completions.create(model="chat", messages=MESSAGES, stream=True))  # 3, usage chunk dropped
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="other", messages=MESSAGES)
    assert gateway.wait_for_metric("gateway_requests_total", before_ok + 2,
                                   client="chat-only", model="chat", status="200") == before_ok + 2
    assert gateway.metric("gateway_requests_total", client="chat-only", model="other", status="403") == before_403 + 1
    assert gateway.metric("gateway_tokens_total", client="chat-only", model="chat", direction="in") == before_in + 2 * PROMPT_TOKENS
    assert gateway.metric("gateway_tokens_total", client="chat-only", model="chat", direction="out") == before_out + 5
    assert gateway.metric("gateway_time_to_first_token_seconds_count", model="chat") >= 1
    assert gateway.metric("gateway_request_duration_seconds_count", model="chat") >= 2
    assert gateway.metric("gateway_upstream_healthy", model="chat", upstream=gateway_upstream(gateway)) == 1
    assert gateway.metric("gateway_in_flight_requests") == 0


def gateway_upstream(gateway) -> str:
    for line in gateway.metrics().splitlines():
        if line.startswith('gateway_upstream_healthy{model="chat"'):
            return line.split('upstream="')[1].split('"')[0]
    raise AssertionError("no upstream health series")


def test_unauthenticated_requests_use_placeholder_labels(gateway):
    before = gateway.metric("gateway_requests_total", client="-", model="-", status="401")
    raw(gateway, "/v1/chat/completions", b'{"model": "made-up-by-caller"}', headers={"Authorization": "Bearer nope"})
    assert gateway.metric("gateway_requests_total", client="-", model="-", status="401") == before + 1
    assert "made-up-by-caller" not in gateway.metrics()


def test_usage_options_are_added_to_the_request_body_as_sent():
    from gateway.routes import Streams
    from gateway.stream_request import plan

    def added(body: bytes) -> bytes:
        stream = plan(Streams.STREAM_OPTIONS, json.loads(body), body, "application/json")
        assert stream is not None
        return stream.body

    usage = {"include_usage": True, "continuous_usage_stats": True}
    plain = b'{"model": "chat", "stream": true, "messages": [{"role": "user", "content": "h\\u00e9"}]} \n'
    assert added(plain).startswith(plain.rstrip()[:-1])
    assert json.loads(added(plain)) == {**json.loads(plain), "stream_options": usage}
    other = b'{"model": "chat", "stream": "yes", "stream_options": {"include_usage": "1", "bogus": 1}}'
    assert json.loads(added(other))["stream_options"] == {"bogus": 1, **usage}
    utf16 = '{"model": "chat", "stream": true}'.encode("utf-16")
    assert json.loads(added(utf16)) == {"model": "chat", "stream": True, "stream_options": usage}
    both = b'{"model": "chat", "stream": 1, "stream_options": {"include_usage": 1, "continuous_usage_stats": "on"}}'
    assert added(both) == both, "asked for already: sent as it came"
