"""HTTP around vLLM's answers through the gateway: request ids (issue 14, item 5), a stream equal to
vLLM's but for the usage chunk the client did not ask for (item 6), and /health, 405, OPTIONS,
Vary, the headers passed on and the client's Content-Type sent on (item 7)."""

from __future__ import annotations

import json

import pytest

from tests.gateway.harness import wait_for
from tests.vllm.helpers import EXTRA, events, post
from tests.vllm.server import MODEL, START_TIMEOUT_S

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(START_TIMEOUT_S + 60)]

CHAT = "/v1/chat/completions"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hello world"}], "max_tokens": 4, **EXTRA}


def access_line(gateway, request_id: str) -> dict | None:
    for line in gateway.log.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("logger") == "gateway.access" and entry["request_id"] == request_id:
            return entry
    return None


@pytest.mark.parametrize("path, prefix", [(CHAT, "chatcmpl-"), ("/v1/completions", "cmpl-")])
def test_a_clients_request_id_becomes_vllms_completion_id(gateway, path, prefix):
    body = {**BODY, "prompt": "hello"} if path != CHAT else BODY
    request_id = f"client-rid-{prefix}14"
    reply = post(gateway, path, body, headers={"X-Request-Id": request_id})
    assert reply.status_code == 200
    assert reply.headers["x-request-id"] == request_id
    assert reply.json()["id"] == prefix + request_id  # vLLM: V/entrypoints/serve/engine/serving.py:133-142
    line = wait_for(lambda: access_line(gateway, request_id))
    assert line and line["route"] == path and line["status"] == 200


def test_a_request_without_an_id_gets_one_that_vllm_uses_too(gateway):
    for stream in (False, True):
        reply = post(gateway, CHAT, {**BODY, "stream": stream})
        made = reply.headers["x-request-id"]
        ids = {chunk["id"] for chunk in events(reply)} if stream else {reply.json()["id"]}
        assert ids == {"chatcmpl-" + made}
    refused = post(gateway, CHAT, BODY, key="sk-test-wrong", headers={"X-Request-Id": "sk-test-wrong"})
    assert refused.status_code == 401 and refused.headers["x-request-id"] not in ("", "sk-test-wrong")


def test_a_stream_without_usage_is_vllms_stream(vllm, gateway):
    """The same events as straight from vLLM, system_fingerprint included (it was lost with the
    usage chunk the gateway asks for and drops). Seeded greedy decoding gives the same tokens;
    chunk boundaries are vLLM's timing, so the events are compared chunk-merged."""
    body = {**BODY, "max_tokens": 16, "temperature": 0, "seed": 3, "stream": True}
    direct, through = events(post(vllm, CHAT, body)), events(post(gateway, CHAT, body))
    assert merged(through) == merged(direct)
    assert [c for c in through if "system_fingerprint" in c][-1]["choices"][0]["finish_reason"] == "length"
    assert not any("usage" in c or c["choices"] == [] for c in through)


def merged(chunks: list[dict]) -> dict:
    """A stream's content without its chunk boundaries: keys, token ids, finish reasons and the fingerprint."""
    choices = [choice for chunk in chunks for choice in chunk["choices"]]
    return {"keys": sorted({key for chunk in chunks for key in chunk if key not in ("id", "created")}),
            "choice keys": sorted({key for choice in choices for key in choice}),
            "token ids": [token for choice in choices for token in choice.get("token_ids") or []],
            "finish reasons": [choice["finish_reason"] for choice in choices if choice["finish_reason"]],
            "fingerprints": [chunk["system_fingerprint"] for chunk in chunks if "system_fingerprint" in chunk]}


def test_health_like_vllms(vllm, gateway):
    assert post(vllm, "/health", method="GET").status_code == post(gateway, "/health", method="GET").status_code == 200


def test_a_wrong_method_is_405_with_allow_like_vllms(vllm, gateway):
    direct = post(vllm, CHAT, method="GET")
    through = post(gateway, CHAT, method="GET")
    assert direct.status_code == through.status_code == 405
    assert set(direct.headers["allow"].split(", ")) <= set(through.headers["allow"].split(", "))


def test_options_without_origin_is_no_403(gateway):
    reply = post(gateway, CHAT, method="OPTIONS", key="-")
    assert reply.status_code == 204 and "POST" in reply.headers["allow"]


def test_only_allowlisted_upstream_headers_come_back(vllm, gateway):
    for stream in (False, True):
        direct = post(vllm, CHAT, {**BODY, "stream": stream})
        through = post(gateway, CHAT, {**BODY, "stream": stream})
        assert through.headers["content-type"] == direct.headers["content-type"]
        assert through.headers["server"] == "llm-edge-gateway"
        assert "vary" not in through.headers  # vLLM's own CORS answer, not the gateway's


@pytest.mark.parametrize("content_type", ["text/plain", "application/json; charset=utf-8"])
def test_the_clients_content_type_is_what_vllm_judges(vllm, gateway, content_type):
    """vLLM takes only application/json on its JSON routes; the gateway used to send its own and hide that."""
    body = json.dumps(BODY).encode()
    direct = post(vllm, CHAT, headers={"Content-Type": content_type}, content=body)
    through = post(gateway, CHAT, headers={"Content-Type": content_type}, content=body)
    assert through.status_code == direct.status_code == (400 if content_type == "text/plain" else 200)
