"""Graceful drain on SIGTERM: not ready at once, in-flight streams finish, then the process exits."""

from __future__ import annotations

import signal
import threading
import time
import urllib.error
import urllib.request

from tests.gateway.harness import KEYS, sha256, wait_for

MESSAGES = [{"role": "user", "content": "hi"}]


def config(stub, **settings) -> dict:
    return {"models": {"m": {"upstreams": [stub.replicas["c0"].url, stub.replicas["c1"].url]}},
            "clients": [{"name": "full", "key_sha256": sha256(KEYS["full"])}], **settings}


def readyz(gateway) -> int:
    try:
        with urllib.request.urlopen(gateway.url + "/readyz", timeout=2) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def test_sigterm_drains_streams_in_flight_then_exits(stub, start_gateway):
    stub.state.behaviour.chunks = 20
    stub.state.behaviour.chunk_delay_s = 0.05  # streams of about 1 s
    gateway = start_gateway(config(stub, drain_grace_s=10, drain_delay_s=0.5))
    client = gateway.client()
    texts: list[str] = []
    started = threading.Barrier(5)

    def stream() -> None:
        pieces = []
        for index, chunk in enumerate(client.chat.completions.create(model="m", messages=MESSAGES, stream=True)):
            if index == 0:
                started.wait()
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
        texts.append("".join(pieces))

    threads = [threading.Thread(target=stream) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait()
    assert readyz(gateway) == 200
    sigterm_at = time.monotonic()
    gateway.proc.send_signal(signal.SIGTERM)
    assert wait_for(lambda: readyz(gateway) == 503, 2), "not ready once draining"
    # Still accepting during drain_delay_s: a late request is served, on a connection that then closes.
    reply = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert reply.headers["Connection"] == "close"
    for thread in threads:
        thread.join(10)
    expected = "".join(f"t{i} " for i in range(20))
    assert texts == [expected] * 4
    assert gateway.proc.wait(10) == 0
    assert time.monotonic() - sigterm_at < 5
    assert stub.state.cancelled == []


def test_grace_period_bounds_the_drain(stub, start_gateway):
    stub.state.behaviour.chunks = 200
    stub.state.behaviour.chunk_delay_s = 0.05  # a 10 s stream
    gateway = start_gateway(config(stub, drain_grace_s=1, drain_delay_s=0))
    stream = gateway.client().chat.completions.create(model="m", messages=MESSAGES, stream=True)
    next(iter(stream))
    sigterm_at = time.monotonic()
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(5) == 0
    assert 0.9 < time.monotonic() - sigterm_at < 3


def test_drain_with_a_delay_ends_inside_its_grace_with_streams_in_flight(stub, start_gateway):
    # aiohttp's own shutdown waited its timeout twice: delay + 2 x (grace - delay), 3.5 s here.
    stub.state.behaviour.chunks = 400
    stub.state.behaviour.chunk_delay_s = 0.05  # 20 s streams: still running when the grace ends
    grace = 2.0
    gateway = start_gateway(config(stub, drain_grace_s=grace, drain_delay_s=0.5))
    client = gateway.client()
    streams = [client.chat.completions.create(model="m", messages=MESSAGES, stream=True) for _ in range(3)]
    for stream in streams:
        next(iter(stream))
    sigterm_at = time.monotonic()
    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(10) == 0
    # Under the 3.5 s of the double wait, with room for cutting the streams and the interpreter's exit.
    assert time.monotonic() - sigterm_at < grace + 1.0
    # The streams were cut at the end of the grace, and with them the upstream requests.
    assert wait_for(lambda: len(stub.state.cancelled) == 3)
