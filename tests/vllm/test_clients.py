"""Clients other than the openai Python SDK, as a new user would bring them, against the gateway in
front of vLLM: the openai Node SDK (tests/vllm/node, pinned in its package-lock.json) and
langchain-openai (requirements-dev.txt). Both run offline against 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from langchain_openai import ChatOpenAI

from tests.vllm.helpers import counted_since, tokens
from tests.vllm.server import CLIENT_KEY, MODEL, START_TIMEOUT_S, VLLM_KEY

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(START_TIMEOUT_S + 60)]

NODE_CLIENT = Path(__file__).with_name("node") / "client.mjs"


def node_client(base_url: str, key: str) -> dict:
    node = shutil.which("node")
    if node is None or not (NODE_CLIENT.parent / "node_modules" / "openai").is_dir():
        pytest.fail("the openai Node SDK is not installed: install Node.js and run `npm ci --prefix tests/vllm/node` "
                    "(make test-vllm does)")
    done = subprocess.run([node, str(NODE_CLIENT), base_url, key, MODEL], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_openai_node_sdk(vllm, gateway):
    direct = node_client(vllm.url + "/v1", VLLM_KEY)
    before = tokens(gateway, MODEL)
    through = node_client(gateway.url + "/v1", CLIENT_KEY)
    assert direct["refused"] == through["refused"] == 401
    assert direct["models"] == through["models"] == [MODEL]
    calls = ("chat", "stream", "completion", "response", "responseStream")
    for result in (direct, through):
        assert result["chat"]["finish"] == "length"
        assert result["responseStream"]["events"] == ["response.created", "response.completed"]
        assert [result[call]["usage"].get("completion_tokens", result[call]["usage"].get("output_tokens"))
                for call in calls] == [4] * len(calls)
    for call in calls:
        assert through[call]["usage"] == direct[call]["usage"], call
    usages = [through[call]["usage"] for call in calls]
    expected = (sum(u.get("prompt_tokens", u.get("input_tokens", 0)) for u in usages), 4 * len(calls))
    assert counted_since(gateway, before, expected, MODEL) == expected


def test_langchain_openai(gateway):
    def model(**options) -> ChatOpenAI:
        return ChatOpenAI(model=MODEL, base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_tokens=4, max_retries=0,
                          extra_body={"ignore_eos": True}, **options)

    before = tokens(gateway, MODEL)
    plain = model().invoke("hello world")
    assert plain.usage_metadata["output_tokens"] == 4
    streamed = None
    for part in model(stream_usage=True).stream("hello world"):
        streamed = part if streamed is None else streamed + part
    assert streamed is not None and streamed.usage_metadata["output_tokens"] == 4
    responses = model(use_responses_api=True).invoke("hello world")
    assert responses.usage_metadata["output_tokens"] == 4
    replies = (plain, streamed, responses)
    expected = (sum(r.usage_metadata["input_tokens"] for r in replies), 12)
    assert counted_since(gateway, before, expected, MODEL) == expected
