"""Cloudflare's ~100 s limit on a reply that has not started (524 on non-Enterprise plans): a
non-streaming request that came through Cloudflare gets a clear 504 before it, telling the client
to stream, and the upstream request is cancelled so the GPU stops (docs: gateway/README.md)."""

from __future__ import annotations

import time

import openai
import pytest

from tests.gateway.harness import KEYS, sha256

MESSAGES = [{"role": "user", "content": "hi"}]
THROUGH_CLOUDFLARE = {"Cf-Ray": "8f1c2a3b4d5e6f70-AMS"}
BOUND_S = 0.4


@pytest.fixture
def edge_gateway(stub, start_gateway):
    return start_gateway({
        "models": {"m": {"upstreams": [stub.replicas["c0"].url]}},
        "clients": [{"name": "full", "key_sha256": sha256(KEYS["full"])}],
        "edge_first_byte_timeout_s": BOUND_S,
    })


def wait_for_cancel(stub, timeout_s: float = 3.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while not stub.state.cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
    return stub.state.cancelled


def test_a_slow_reply_through_cloudflare_is_a_504_telling_the_client_to_stream(stub, edge_gateway):
    stub.state.behaviour.reply_delay_s = 1.5
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as caught:
        edge_gateway.client().chat.completions.create(model="m", messages=MESSAGES, extra_headers=THROUGH_CLOUDFLARE)
    elapsed = time.monotonic() - started
    assert caught.value.status_code == 504 and caught.value.code == "edge_timeout"
    assert '"stream": true' in caught.value.message
    assert BOUND_S <= elapsed < 1.2
    # The gateway dropped the upstream request: vLLM stops generating for nobody.
    assert wait_for_cancel(stub) == ["c0"]


def test_callers_inside_the_cluster_wait_as_long_as_the_upstream_takes(stub, edge_gateway):
    stub.state.behaviour.reply_delay_s = 1.0
    reply = edge_gateway.client().chat.completions.create(model="m", messages=MESSAGES)
    assert reply.choices[0].message.content == "from c0" and stub.state.cancelled == []


def test_streams_through_cloudflare_are_never_cut(stub, edge_gateway):
    stub.state.behaviour.first_chunk_delay_s = 1.0
    chunks = list(edge_gateway.client().chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers=THROUGH_CLOUDFLARE))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip().startswith("t0")
    assert stub.state.cancelled == []
