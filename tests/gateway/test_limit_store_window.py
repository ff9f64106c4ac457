"""The limit store's connection, in process, against a real redis-server that stops reading.

A call to a hung store can be larger than the kernel buffers on both sides (thousands of clients
in one call): its write then waits for room that never comes. Giving up on the store must still
decide every request at once and leave the connection free to reach the store again.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.config import ClientSettings, SharedLimitsSettings
from gateway.metrics import Metrics
from gateway.shared_limits import PROBE_INTERVAL_S, PROBE_TIMEOUT_S, LimitStore
from tests.gateway.store import PASSWORD, RedisServer

# About 400 bytes of keys and arguments a client: 40,000 clients make one call of about 16 MB,
# more than loopback TCP buffers (4 MB to send, 6 MB to receive by default on Linux) hold.
CLIENTS = 40_000
PREFIX = "llm-edge:test:window:" + "p" * 60
TIMEOUT_S = 0.3


def _limit_store(server, metrics: Metrics) -> LimitStore:
    settings = SharedLimitsSettings(url=server.url, password_env="UNUSED", timeout_ms=TIMEOUT_S * 1000,
                                    key_prefix=PREFIX)
    return LimitStore(settings, server.url, PASSWORD, metrics)


async def _hung_store_with_a_call_too_large_to_send(server) -> dict[str, object]:
    metrics = Metrics(limit_store=True)
    store = _limit_store(server, metrics)
    limits = list(store.client_limits(
        ClientSettings(name=f"client-{index:05d}-" + "n" * 60, key_sha256="0" * 64, rpm=1000)
        for index in range(CLIENTS)).values())
    await store.start()
    assert store.up
    server.pause()
    try:
        started = time.monotonic()
        large = [asyncio.ensure_future(client.admit()) for client in limits]
        await asyncio.sleep(0.05)  # the large call is being written; these queue behind it
        queued = [asyncio.ensure_future(limits[0].admit()) for _ in range(5)]
        done, pending = await asyncio.wait(large + queued, timeout=TIMEOUT_S + 2)
        decided_s = time.monotonic() - started
        up_while_hung = store.up
        # Still hung: the replica keeps probing it (each probe times out and counts), which it
        # can only do once the connection with the unsent call on it is gone.
        await asyncio.sleep(2 * PROBE_INTERVAL_S + PROBE_TIMEOUT_S)
        timeouts = metrics.registry.get_sample_value("gateway_limit_store_errors_total", {"error": "timeout"})
    finally:
        server.resume()
    deadline = time.monotonic() + 5
    while not store.up and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    outcome = {"pending": len(pending), "decided_s": decided_s, "up_while_hung": up_while_hung, "timeouts": timeouts,
               "up_again": store.up, "first": large[0].result() if large[0].done() else "pending"}
    await store.close()
    return outcome


@pytest.fixture
def server(tmp_path):
    redis_server = RedisServer(tmp_path)
    yield redis_server
    redis_server.stop()


def test_a_call_too_large_for_a_hung_store_is_given_up_on_whole(server):
    outcome = asyncio.run(_hung_store_with_a_call_too_large_to_send(server))
    assert outcome["pending"] == 0, f"every request is decided once the store is given up on: {outcome}"
    assert outcome["decided_s"] < TIMEOUT_S + 2, outcome
    assert outcome["first"] is None, "decided by the local limits, which admit it"
    assert outcome["up_while_hung"] is False
    assert outcome["timeouts"] >= 2, f"the call's timeout, then at least one probe's: {outcome}"
    # The connection was ended, not left waiting for room to write: the store is reached again.
    assert outcome["up_again"] is True, outcome


async def _closed_while_the_store_hangs(server) -> list[str]:
    store = _limit_store(server, Metrics(limit_store=True))
    [client] = store.client_limits([ClientSettings(name="closing", key_sha256="0" * 64, rpm=10)]).values()
    await store.start()
    server.pause()
    try:
        admission = asyncio.ensure_future(client.admit())
        await asyncio.sleep(0)  # the call is out
        await store.close()  # waits for it: its timeout, and the store counted down, fall inside the wait
        assert admission.done()
    finally:
        server.resume()
    await asyncio.sleep(2 * PROBE_INTERVAL_S + PROBE_TIMEOUT_S)  # a prober left behind would reconnect by now
    connected = server.client().client_list()
    return [entry["name"] for entry in connected]


def test_a_store_closed_while_hung_is_not_reached_again(server):
    assert "llm-edge-gateway" not in asyncio.run(_closed_while_the_store_hangs(server))
