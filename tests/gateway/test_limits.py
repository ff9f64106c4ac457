"""Per-key requests- and tokens-per-minute limits: through the real gateway, and the bucket arithmetic."""

from __future__ import annotations

import openai
import pytest

from gateway.limits import ClientLimits, TokenBucket
from tests.gateway.harness import KEYS

MESSAGES = [{"role": "user", "content": "hi"}]


def test_rpm_limit_answers_429_with_retry_after(gateway, stub):
    client = gateway.client(key=KEYS["rpm"])  # rpm: 2
    refused_before = gateway.metric("gateway_rate_limited_total", client="rpm", limit="rpm")
    client.chat.completions.create(model="chat", messages=MESSAGES)
    client.chat.completions.create(model="chat", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="chat", messages=MESSAGES)
    # One request comes back every 30 s at 2 per minute.
    assert 1 <= int(caught.value.response.headers["Retry-After"]) <= 30
    assert caught.value.code == "rate_limit_exceeded"
    assert "requests per minute" in caught.value.message
    assert len(stub.state.seen) == 2
    assert gateway.metric("gateway_rate_limited_total", client="rpm", limit="rpm") == refused_before + 1
    # Other keys are not affected.
    gateway.client().chat.completions.create(model="chat", messages=MESSAGES)


def test_tpm_limit_counts_streamed_usage_then_answers_429(gateway, stub):
    client = gateway.client(key=KEYS["tpm"])  # tpm: 10; one stream uses 5 + 3 tokens
    refused_before = gateway.metric("gateway_rate_limited_total", client="tpm", limit="tpm")
    list(client.chat.completions.create(model="chat", messages=MESSAGES, stream=True))
    client.chat.completions.create(model="chat", messages=MESSAGES)  # 2 left: admitted, uses 7 -> in debt
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="chat", messages=MESSAGES)
    assert "tokens per minute" in caught.value.message
    # Debt of 5 tokens plus one more to be positive, at 10/60 tokens per second: 36 s.
    assert int(caught.value.response.headers["Retry-After"]) == 36
    assert len(stub.state.seen) == 2
    assert gateway.metric("gateway_rate_limited_total", client="tpm", limit="tpm") == refused_before + 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_at_the_configured_rate_up_to_its_capacity():
    clock = FakeClock()
    bucket = TokenBucket(60, clock)  # one per second
    bucket.take(60)
    assert bucket.wait_time(1) == pytest.approx(1.0)
    clock.now = 0.5
    assert bucket.wait_time(1) == pytest.approx(0.5)
    clock.now = 1000
    bucket.take(60)
    assert bucket.wait_time(1) == pytest.approx(1.0), "capacity caps the refill at one minute's worth"


def test_limits_admit_until_exhausted_then_report_which():
    clock = FakeClock()
    limits = ClientLimits(rpm=3, tpm=None, clock=clock)
    assert [limits.admit() for _ in range(3)] == [None, None, None]
    assert limits.admit() == ("requests per minute", 20)
    clock.now = 20
    assert limits.admit() is None


def test_unlimited_client_is_always_admitted():
    limits = ClientLimits(rpm=None, tpm=None)
    limits.charge_tokens(10**9)
    assert all(limits.admit() is None for _ in range(1000))
