"""Prefix-affinity routing in front of two real vLLM replicas: a conversation's turns reach the
replica whose prefix cache already holds the history (vLLM's own vllm:prefix_cache_hits_total)."""

from __future__ import annotations

import pytest

from tests.gateway.harness import GatewayProcess, sha256
from tests.vllm.helpers import counter
from tests.vllm.server import CLIENT, CLIENT_KEY, MODEL, START_TIMEOUT_S, VLLM_KEY, VllmServer

# Two servers start side by side in its fixture: more than the suite's default 180 s on a loaded machine.
pytestmark = [pytest.mark.vllm, pytest.mark.timeout(START_TIMEOUT_S + 120)]

# Words of the tiny model's tokenizer corpus, so that a word is about one token.
WORDS = "the quick brown fox jumps over the lazy dog hello world model token stream usage request response".split()


def cache(servers: list[VllmServer]) -> list[tuple[float, float]]:
    """(hits, queried tokens) of each replica's prefix cache."""
    return [(counter(s, "vllm:prefix_cache_hits_total"), counter(s, "vllm:prefix_cache_queries_total")) for s in servers]


def play(gateway: GatewayProcess, seed: int, turns: int = 5) -> list[int]:
    """One conversation, each turn resending the whole history: a 400-token system prompt, 60-token
    questions. The prompt tokens of each turn, as vLLM counted them."""
    client = gateway.client(CLIENT_KEY)
    system = " ".join(WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(400))
    messages = [{"role": "system", "content": f"conversation {seed}: {system}"}]
    prompt_tokens = []
    for turn in range(turns):
        messages.append({"role": "user", "content": f"question {turn}: " + " ".join(WORDS[(turn + i) % len(WORDS)]
                                                                                  for i in range(60))})
        reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=4, temperature=0)
        messages.append({"role": "assistant", "content": reply.choices[0].message.content or ""})
        prompt_tokens.append(reply.usage.prompt_tokens)
    return prompt_tokens


@pytest.fixture
def start_gateway(tmp_path):
    started = []

    def start(servers: list[VllmServer], routing: str) -> GatewayProcess:
        config = {"models": {MODEL: {"upstreams": [s.url for s in servers], "upstream_key_env": "VLLM_UPSTREAM_KEY",
                                     "routing": routing}},
                  "clients": [{"name": CLIENT, "key_sha256": sha256(CLIENT_KEY)}]}
        (tmp_path / routing).mkdir()
        started.append(GatewayProcess(config, tmp_path / routing, {"VLLM_UPSTREAM_KEY": VLLM_KEY}))
        return started[-1]

    yield start
    for gateway in started:
        gateway.stop()


def test_a_conversation_hits_one_replicas_prefix_cache(vllm_pair, start_gateway):
    affinity = start_gateway(vllm_pair, "prefix_affinity")
    before = cache(vllm_pair)
    prompts = play(affinity, seed=1)
    after = cache(vllm_pair)
    hits = [a[0] - b[0] for a, b in zip(after, before, strict=True)]
    queried = [a[1] - b[1] for a, b in zip(after, before, strict=True)]
    home = max(range(2), key=lambda i: queried[i])
    assert queried[1 - home] == 0, f"every turn went to one replica: queried tokens {queried}"
    # Turns 2 to 5 each find the previous turn's prompt in that replica's cache, in vLLM CPU's
    # 128-token blocks (a block less, in case the tokens at the turn's boundary merge differently).
    expected = sum((tokens // 128 - 1) * 128 for tokens in prompts[:-1])
    assert expected >= 1000 and hits[home] >= expected, (hits, queried, prompts)
    assert affinity.metric("gateway_routing_decisions_total", model=MODEL, decision="affinity") == 4

    # The same conversation shape under least outstanding alternates between the replicas: the
    # turns that land on the other replica find only what that one computed two turns before.
    least = start_gateway(vllm_pair, "least_outstanding")
    before = cache(vllm_pair)
    play(least, seed=2)
    after = cache(vllm_pair)
    scattered_hits = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    assert all(a[1] > b[1] for a, b in zip(after, before, strict=True)), "both replicas served turns"
    assert scattered_hits < sum(hits), (scattered_hits, hits)
