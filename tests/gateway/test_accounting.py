"""Token accounting against the stub (vLLM's stream shapes, tests/vllm checks them against vLLM):
the final usage only, `stream` and `stream_options` read as vLLM reads them, streams cut short
charged what they were sent, the fingerprint kept where vLLM puts it, every route's usage."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from gateway import forms
from gateway.routes import Streams
from gateway.stream_request import BadField, lax_bool, plan
from tests.gateway.harness import KEYS, base_config, raw
from tests.gateway.scripted_upstream import HEAD_CHUNKED, chunk
from tests.gateway.upstream_stub import FINGERPRINT, PROMPT_TOKENS

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hi"}]


def auth(key: str = KEYS["full"]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def post(gateway, body: dict, path: str = CHAT, key: str = KEYS["full"]) -> tuple[int, dict[str, str], bytes]:
    return raw(gateway, path, json.dumps(body).encode(), headers=auth(key))


def events(body: bytes) -> list[dict]:
    """The JSON events of an SSE body, without [DONE]."""
    return [json.loads(line[5:]) for line in body.split(b"\n")
            if line.startswith(b"data:") and line[5:].strip() != b"[DONE]"]


def tokens(gateway, client: str = "full", model: str = "chat") -> tuple[float, float]:
    return tuple(gateway.metric("gateway_tokens_total", client=client, model=model, direction=direction)
                 for direction in ("in", "out"))


def counted_since(gateway, before: tuple[float, float], expected: tuple[int, int], client: str = "full",
                  model: str = "chat") -> tuple[float, float]:
    """The tokens counted since `before`, once they reach `expected` (a request is counted as its handler ends)."""
    deadline = time.monotonic() + 2
    while (now := tokens(gateway, client, model)) != (before[0] + expected[0], before[1] + expected[1]) \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    return now[0] - before[0], now[1] - before[1]


# --- issue 14, item 1: the final usage only, and none the client did not ask for -------------------

@pytest.mark.parametrize("options, usage_on_chunks, usage_chunk", [
    ({"include_usage": True, "continuous_usage_stats": True}, True, True),
    ({"include_usage": True}, False, True),
    ({"continuous_usage_stats": True}, False, False),  # vLLM ignores it without include_usage
    (None, False, False),
])
def test_usage_is_counted_once_and_shown_only_where_asked(gateway, stub, options, usage_on_chunks, usage_chunk):
    stub.state.behaviour.chunks = 6
    before = tokens(gateway)
    status, _, body = post(gateway, {"model": "chat", "messages": MESSAGES, "stream": True,
                                     **({"stream_options": options} if options else {})})
    assert status == 200
    *chunks, last = events(body)
    assert all(("usage" in c) is usage_on_chunks for c in chunks), "cumulative usage only where the client asked"
    assert (last["choices"] == [] and "usage" in last) is usage_chunk
    # 6 cumulative usages on the chunks plus the final one: counted once, not added up.
    assert counted_since(gateway, before, (PROMPT_TOKENS, 6)) == (PROMPT_TOKENS, 6)
    assert stub.state.seen[-1].body["stream_options"] == {**(options or {}), "include_usage": True,
                                                          "continuous_usage_stats": True}


# --- item 2: `stream` and `stream_options` read as vLLM reads them ---------------------------------

@pytest.mark.parametrize("value", [1, "true", "yes", "on", "1", "t", "Y", 1.0])
def test_stream_given_as_a_lax_true_is_a_stream_and_counted(gateway, stub, value):
    before = tokens(gateway)
    status, headers, body = post(gateway, {"model": "chat", "messages": MESSAGES, "stream": value})
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    assert all(c["choices"] for c in events(body)), "no usage chunk: the client did not ask for one"
    assert counted_since(gateway, before, (PROMPT_TOKENS, 3)) == (PROMPT_TOKENS, 3)


@pytest.mark.parametrize("value", ["true", 1, "yes"])
def test_include_usage_given_as_a_lax_true_keeps_the_usage_chunk(gateway, stub, value):
    status, _, body = post(gateway, {"model": "chat", "messages": MESSAGES, "stream": True,
                                     "stream_options": {"include_usage": value}})
    assert status == 200
    last = events(body)[-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("field, value", [
    ("stream", 2), ("stream", ""), ("stream", "banana"), ("stream", []), ("stream", 1.5),
    ("stream_options", "x"), ("stream_options", [1]),
    ("include_usage", "banana"), ("include_usage", 2), ("continuous_usage_stats", "maybe"),
])
def test_stream_fields_vllm_refuses_are_400_here_and_never_reach_it(gateway, stub, field, value):
    request = {"model": "chat", "messages": MESSAGES, "stream": True}
    if field in ("include_usage", "continuous_usage_stats"):
        request["stream_options"] = {field: value}
    else:
        request[field] = value
    status, _, body = post(gateway, request)
    assert status == 400
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_stream_field" and error["param"].endswith(field)
    assert stub.state.seen == []


def test_a_non_stream_goes_as_it_came(gateway, stub):
    # vLLM judges stream_options without a stream itself (a 400, but for "stream": "false", which
    # its check reads as true before pydantic makes it false).
    sent = {"model": "chat", "messages": MESSAGES, "stream": "false", "stream_options": {"include_usage": True}}
    status, headers, _ = post(gateway, sent)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert stub.state.seen[-1].body == sent


def test_lax_bool_is_pydantics():
    assert [lax_bool(v, "f") for v in (True, 1, 1.0, "true", "TRUE", "yes", "on", "1", "t", "y")] == [True] * 10
    assert [lax_bool(v, "f") for v in (False, None, 0, 0.0, "false", "no", "off", "0", "f", "n")] == [False] * 10
    for refused in (2, 1.5, "", " true", "banana", [], {}, [1]):
        with pytest.raises(BadField):
            lax_bool(refused, "f")


@pytest.mark.parametrize(("fields", "choices_per_prompt", "one_choice"), [
    ({}, 1, True), ({"n": 1}, 1, True), ({"n": "2"}, 2, False), ({"n": 2.0}, 2, False), ({"n": "x"}, 1, True),
    ({"prompt": "one"}, 1, True), ({"prompt": ["one"]}, 1, True), ({"prompt": [1, 2, 3]}, 1, True),
    ({"prompt": ["one", "two"]}, 1, False), ({"prompt": [[1], [2]]}, 1, False),
    ({"prompt": "one", "prompt_embeds": "QUJD"}, 1, False), ({"prompt_embeds": ["QUJD", "REVG"]}, 1, False),
])
def test_choices_per_prompt_are_read_as_vllm_reads_n_and_prompt(fields, choices_per_prompt, one_choice):
    # vLLM's `n` is a pydantic int in lax mode ("2" is 2); several prompts answer in choices of their own.
    payload = {"model": "m", "stream": True, **fields}
    stream = plan(Streams.STREAM_OPTIONS, payload, json.dumps(payload).encode(), "application/json")
    assert (stream.choices_per_prompt, stream.one_choice) == (choices_per_prompt, one_choice)


# --- item 3: a stream cut short is charged what it was sent ---------------------------------------

def test_a_stream_the_client_leaves_is_charged_what_was_relayed(start_gateway, stub):
    r = stub.replicas
    gateway = start_gateway(base_config([r["c0"].url], [r["o0"].url]))  # its own tpm bucket
    stub.state.behaviour.chunks = 200
    stub.state.behaviour.chunk_delay_s = 0.01
    before = tokens(gateway, "tpm")
    received = 0
    with httpx.stream("POST", gateway.url + CHAT, json={"model": "chat", "messages": MESSAGES, "stream": True},
                      headers=auth(KEYS["tpm"]), timeout=10) as reply:
        for line in reply.iter_lines():
            if line.startswith("data:") and '"content":"t' in line:
                received += 1
                if received == 8:
                    break
    assert wait_for_cancel(stub)
    prompt, completion = counted_since(gateway, before, (PROMPT_TOKENS, received), client="tpm")
    assert prompt == PROMPT_TOKENS
    assert received <= completion < 200
    # tpm is 10: the cut stream used it up.
    status, _, body = post(gateway, {"model": "chat", "messages": MESSAGES}, key=KEYS["tpm"])
    assert status == 429, body


def wait_for_cancel(stub) -> bool:
    deadline = time.monotonic() + 2
    while not stub.state.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(stub.state.cancelled)


def _cumulative_chunk(completion_tokens: int) -> bytes:
    return b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}],' \
           b'"usage":{"prompt_tokens":9,"total_tokens":%d,"completion_tokens":%d}}\n\n' % (
               9 + completion_tokens, completion_tokens)


def test_a_stream_the_upstream_cuts_is_charged_what_was_relayed(scripted_gateway):
    async def cut_after_four_tokens(writer):
        writer.write(HEAD_CHUNKED + b"".join(chunk(_cumulative_chunk(n)) for n in range(1, 5)))
        await writer.drain()
        return False  # closes the connection mid-stream

    gateway = scripted_gateway(cut_after_four_tokens)
    before = tokens(gateway, model="m")
    with pytest.raises(httpx.HTTPError):
        httpx.post(gateway.url + CHAT, json={"model": "m", "stream": True}, headers=auth(), timeout=5)
    assert counted_since(gateway, before, (9, 4), model="m") == (9, 4)


# --- item 6: system_fingerprint where vLLM puts it --------------------------------------------------

def test_fingerprint_stays_on_the_finish_chunk_when_usage_was_not_asked_for(gateway, stub):
    status, _, body = post(gateway, {"model": "chat", "messages": MESSAGES, "stream": True})
    assert status == 200
    chunks = events(body)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["system_fingerprint"] == FINGERPRINT
    assert [c for c in chunks if "system_fingerprint" in c] == chunks[-1:]
    # Byte for byte what the upstream sends without include_usage: the key right after the choices.
    assert body.split(b"\n\n")[-3].endswith(b']' + b',"system_fingerprint":"' + FINGERPRINT.encode() + b'"}')


# --- item 4: usage of the other routes --------------------------------------------------------------

def test_responses_plain_and_streamed_are_counted(gateway, stub):
    before = tokens(gateway)
    reply = gateway.client().responses.create(model="chat", input="hi")
    assert reply.usage.input_tokens == PROMPT_TOKENS
    assert counted_since(gateway, before, (PROMPT_TOKENS, 2)) == (PROMPT_TOKENS, 2)
    before = tokens(gateway)
    kinds = [event.type for event in gateway.client().responses.create(model="chat", input="hi", stream=True)]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert counted_since(gateway, before, (PROMPT_TOKENS, 3)) == (PROMPT_TOKENS, 3)


def test_a_responses_stream_cut_short_is_charged_its_deltas(gateway, stub):
    stub.state.behaviour.chunks = 100
    stub.state.behaviour.chunk_delay_s = 0.01
    before = tokens(gateway)
    deltas = 0
    with httpx.stream("POST", gateway.url + "/v1/responses", json={"model": "chat", "input": "hi", "stream": True},
                      headers=auth(), timeout=10) as reply:
        for line in reply.iter_lines():
            deltas += line == "event: response.output_text.delta"
            if deltas == 5:
                break
    assert wait_for_cancel(stub)
    prompt, completion = counted_since(gateway, before, (0, deltas))
    assert prompt == 0  # vLLM reports none before response.completed
    assert deltas <= completion < 100


def test_audio_form_is_routed_by_its_model_field(gateway, stub):
    transcript = gateway.client().audio.transcriptions.create(model="chat", file=("a.wav", b"RIFF....WAVE"))
    assert transcript.text.startswith("from c")
    assert stub.state.seen[-1].path == "/v1/audio/transcriptions"
    with pytest.raises(openai.PermissionDeniedError):
        gateway.client(key=KEYS["chat-only"]).audio.transcriptions.create(model="other", file=("a.wav", b"RIFF"))


def test_audio_stream_asks_for_usage_in_the_form_and_counts_it(gateway, stub):
    before = tokens(gateway)
    files = {"file": ("a.wav", b"RIFF....WAVE", "audio/wav")}
    reply = httpx.post(gateway.url + "/v1/audio/transcriptions", data={"model": "chat", "stream": "true"}, files=files,
                       headers={"Authorization": f"Bearer {KEYS['full']}"}, timeout=5)
    assert reply.status_code == 200
    assert all(c["choices"] and "usage" not in c for c in events(reply.content))
    assert stub.state.seen[-1].body["stream_include_usage"] == "true"
    assert counted_since(gateway, before, (PROMPT_TOKENS, 3)) == (PROMPT_TOKENS, 3)


def test_form_fields_are_found_by_their_boundary():
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            b"Content-Type: audio/wav\r\n\r\nname=\"model\"\r\nx--XyZ\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"stream\"\r\n\r\ntrue\r\n--XyZ--\r\n")
    assert forms.boundary('multipart/form-data; boundary="XyZ"') == b"XyZ"
    assert forms.boundary("application/json") is None
    assert forms.text_fields(body, b"XyZ", frozenset(("model", "stream", "file"))) == {"model": "whisper",
                                                                                      "stream": "true"}
    added = forms.with_fields(body, b"XyZ", {"stream": "false"})
    assert forms.text_fields(added, b"XyZ", frozenset(("stream",))) == {"stream": "false"}, "the last value wins"
