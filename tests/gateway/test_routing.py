"""Routing: least outstanding requests, retry only before the upstream saw the request,
passive health, DNS names with several addresses, cancellation reaching the upstream."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from gateway.config import HealthSettings, ModelSettings
from gateway.metrics import Metrics
from gateway.upstreams import UpstreamPool
from tests.gateway.harness import KEYS, conversation, free_port, sha256

MESSAGES = [{"role": "user", "content": "hi"}]


def one_model(upstreams: list[str], **settings) -> dict:
    return {"models": {"m": {"upstreams": upstreams}},
            "clients": [{"name": "full", "key_sha256": sha256(KEYS["full"])}], **settings}


def test_equal_replicas_share_the_load(gateway, stub):
    client = gateway.client()
    for _ in range(30):
        client.chat.completions.create(model="chat", messages=MESSAGES)
    assert [stub.state.count(name) for name in ("c0", "c1", "c2")] == [10, 10, 10]


SYSTEM = "You answer questions about the llm-edge gateway, briefly and exactly. " * 12


def test_conversations_stick_to_one_replica(gateway, stub):
    client = gateway.client()
    hashed_before = gateway.metric("gateway_routing_decisions_total", model="chat", decision="hash")
    conversations = {seed: conversation(seed, 3, SYSTEM) for seed in range(9)}
    for turn in range(3):  # interleaved, as concurrent users would send them
        for sent in conversations.values():
            client.chat.completions.create(model="chat", messages=sent[turn])
    served: dict[int, set[str]] = {}
    for seen in stub.state.seen:
        seed = int(seen.body["messages"][1]["content"].split()[1].rstrip(","))  # "Conversation <seed>, ..."
        served.setdefault(seed, set()).add(seen.replica)
    assert all(len(replicas) == 1 for replicas in served.values()), served
    assert len(set().union(*served.values())) >= 2, "conversations sharing a system prompt still spread"
    assert gateway.metric("gateway_routing_decisions_total", model="chat", decision="hash") - hashed_before == 9
    assert gateway.metric("gateway_routing_decisions_total", model="chat", decision="affinity") >= 18


def test_least_outstanding_model_scatters_a_conversation(stub, start_gateway):
    replicas = [stub.replicas[name].url for name in ("c0", "c1", "c2")]
    config = one_model(replicas)
    config["models"]["m"]["routing"] = "least_outstanding"
    client = start_gateway(config).client()
    for sent in conversation(1, 6, SYSTEM):
        client.chat.completions.create(model="m", messages=sent)
    assert len({seen.replica for seen in stub.state.seen}) == 3


def test_slow_replica_gets_fewer_requests(gateway, stub):
    # Far slower than a request's own round trip, even on a loaded machine (where a slower round
    # trip narrows the gap between the replicas).
    stub.state.behaviour.replica_delay_s = {"c0": 1.0}
    stub.state.behaviour.reply_delay_s = 0.01

    async def run():
        client = gateway.async_client()

        async def worker():
            for _ in range(8):
                await client.chat.completions.create(model="chat", messages=MESSAGES)

        await asyncio.gather(*(worker() for _ in range(4)))

    asyncio.run(run())
    counts = {name: stub.state.count(name) for name in ("c0", "c1", "c2")}
    # Round robin would give each about 11.
    assert counts["c0"] <= 6 and counts["c1"] >= 11 and counts["c2"] >= 11, counts


def test_replica_killed_while_traffic_flows(own_stub, start_gateway):
    own_stub.state.behaviour.reply_delay_s = 0.005
    survivor, victim = own_stub.replica("k0"), own_stub.replica("k1")
    # A high failure threshold keeps sending traffic at the dead replica: every one of those
    # requests meets a refused connection and must be retried on k0, not fail.
    gateway = start_gateway(one_model([survivor.url, victim.url], health={"failures": 1000, "cooldown_s": 30}))
    client = gateway.client()
    failed_at: list[float] = []
    ok_after_kill = []
    killed_at: list[float] = []

    def worker() -> None:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                client.chat.completions.create(model="m", messages=MESSAGES)
                if killed_at:
                    ok_after_kill.append(1)
            except openai.APIError:
                failed_at.append(time.monotonic())

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(worker) for _ in range(4)]
        time.sleep(0.5)
        own_stub.kill(victim)
        killed_at.append(time.monotonic())
        for future in futures:
            future.result()

    # Only requests the victim was answering when it died may fail (at most one per worker),
    # and only at that moment; after it, refused connections are retried on k0.
    assert len(failed_at) <= 4
    assert all(t - killed_at[0] < 1.0 for t in failed_at), [t - killed_at[0] for t in failed_at]
    assert len(ok_after_kill) > 20
    refused = gateway.metric("gateway_upstream_failures_total", model="m", upstream=victim.url)
    assert refused >= 10, "traffic kept meeting the dead replica and was retried"


def test_connection_refused_is_retried_on_another_upstream(stub, start_gateway):
    dead = f"http://127.0.0.1:{free_port()}"
    gateway = start_gateway(one_model([dead, stub.replicas["c0"].url], health={"failures": 3, "cooldown_s": 30}))
    client = gateway.client()
    for _ in range(6):
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "from c0"
    assert gateway.metric("gateway_upstream_failures_total", model="m", upstream=dead) == 3
    assert gateway.metric("gateway_upstream_healthy", model="m", upstream=dead) == 0


def test_all_upstreams_refusing_is_502(start_gateway):
    gateway = start_gateway(one_model([f"http://127.0.0.1:{free_port()}"]))
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.client().chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_unreachable"


def test_failing_upstream_cools_down_then_is_retried(own_stub, start_gateway):
    good, bad = own_stub.replica("h0"), own_stub.replica("h1")
    own_stub.state.behaviour.replica_status = {"h1": 503}
    gateway = start_gateway(one_model([good.url, bad.url], health={"failures": 2, "cooldown_s": 3.0}))
    client = gateway.client()
    statuses = []
    for _ in range(10):
        try:
            client.chat.completions.create(model="m", messages=MESSAGES)
            statuses.append(200)
        except openai.APIStatusError as error:
            statuses.append(error.status_code)
    assert own_stub.state.count("h1") == 2, "after 2 failures in a row h1 is skipped"
    assert statuses.count(503) == 2 and statuses.count(200) == 8
    assert gateway.metric("gateway_upstream_healthy", model="m", upstream=bad.url) == 0
    with urllib.request.urlopen(gateway.url + "/readyz") as reply:
        assert reply.status == 200, "one healthy upstream is enough to be ready"

    own_stub.state.behaviour.replica_status = {}
    time.sleep(3.1)  # a cool-down long enough that the 10 requests above surely fall inside it
    for _ in range(4):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert own_stub.state.count("h1") > 2, "after the cool-down h1 gets traffic again"
    assert gateway.metric("gateway_upstream_healthy", model="m", upstream=bad.url) == 1


def test_upstream_silent_past_the_read_timeout_is_504(own_stub, start_gateway):
    replica = own_stub.replica("s0")
    own_stub.state.behaviour.reply_delay_s = 2.0
    gateway = start_gateway(one_model([replica.url], upstream_read_timeout_s=0.3))
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.client().chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 504 and caught.value.code == "upstream_timeout"
    assert time.monotonic() - started < 1.5
    assert gateway.metric("gateway_upstream_failures_total", model="m", upstream=replica.url) == 1


def test_stream_stalling_past_the_read_timeout_is_cut_off(own_stub, start_gateway):
    replica = own_stub.replica("s0")
    own_stub.state.behaviour.chunks = 3
    own_stub.state.behaviour.chunk_delay_s = 1.0
    gateway = start_gateway(one_model([replica.url], upstream_read_timeout_s=0.3))
    stream = gateway.client().chat.completions.create(model="m", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    # The first chunk came at once; the stall after it ended the reply without its last chunk.
    assert len(received) == 1
    deadline = time.monotonic() + 2
    while not own_stub.state.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    assert own_stub.state.cancelled == ["s0"], "the upstream saw its stream dropped"
    assert gateway.metric("gateway_requests_total", client="full", model="m", status="502") == 1


def test_model_healthy_upstreams_gauge(stub, start_gateway):
    dead = f"http://127.0.0.1:{free_port()}"
    gateway = start_gateway({"models": {"down": {"upstreams": [dead]}, "up": {"upstreams": [stub.replicas["c0"].url]}},
                             "clients": [{"name": "full", "key_sha256": sha256(KEYS["full"])}],
                             "health": {"failures": 2, "cooldown_s": 30}})
    text = gateway.metrics()
    # Present for every model from start-up, before any traffic.
    assert 'gateway_model_healthy_upstreams{model="down"} 1.0' in text
    assert 'gateway_model_healthy_upstreams{model="up"} 1.0' in text
    client = gateway.client()
    for _ in range(2):
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="down", messages=MESSAGES)
        assert caught.value.status_code == 502
    client.chat.completions.create(model="up", messages=MESSAGES)
    text = gateway.metrics()
    assert 'gateway_model_healthy_upstreams{model="down"} 0.0' in text
    assert gateway.metric("gateway_model_healthy_upstreams", model="up") >= 1


def test_dns_name_is_expanded_to_its_addresses(stub, start_gateway):
    # localhost resolves to 127.0.0.1 (and on most hosts ::1, where nothing listens: refused, retried).
    port = stub.replicas["c1"].port
    gateway = start_gateway(one_model([f"http://localhost:{port}"]))
    reply = gateway.client().chat.completions.create(model="m", messages=MESSAGES)
    assert reply.choices[0].message.content == "from c1"
    assert stub.state.seen[-1].headers["Host"] == f"localhost:{port}"
    assert f'upstream="http://127.0.0.1:{port}"' in gateway.metrics()


def test_client_disconnect_cancels_the_upstream_stream(gateway, stub):
    stub.state.behaviour.chunks = 100
    stub.state.behaviour.chunk_delay_s = 0.02
    before = gateway.metric("gateway_requests_total", client="full", model="chat", status="499")
    stream = gateway.client().chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    for index, _ in enumerate(stream):
        if index == 2:
            break
    stream.close()
    deadline = time.monotonic() + 2
    while not stub.state.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(stub.state.cancelled) == 1
    assert stub.state.completed_streams == 0
    assert gateway.metric("gateway_requests_total", client="full", model="chat", status="499") == before + 1


def test_client_that_leaves_after_done_counts_as_answered(gateway, stub):
    # The openai SDK closes the connection as soon as it reads [DONE]; the upstream's body may
    # end a moment later. The client got the whole answer: a 200, not a 499.
    stub.state.behaviour.end_delay_s = 0.5
    labels = {"client": "full", "model": "chat"}
    before_ok = gateway.metric("gateway_requests_total", status="200", **labels)
    before_gone = gateway.metric("gateway_requests_total", status="499", **labels)
    chunks = list(gateway.client().chat.completions.create(model="chat", messages=MESSAGES, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert gateway.wait_for_metric("gateway_requests_total", before_ok + 1, status="200", **labels) == before_ok + 1
    assert gateway.metric("gateway_requests_total", status="499", **labels) == before_gone


def test_async_client_cancel_reaches_the_upstream(gateway, stub):
    stub.state.behaviour.chunks = 100
    stub.state.behaviour.chunk_delay_s = 0.02

    async def run():
        client = gateway.async_client()
        stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream.close()

    asyncio.run(run())
    deadline = time.monotonic() + 2
    while not stub.state.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(stub.state.cancelled) == 1


# --- pool logic, without sockets -------------------------------------------------------------

def pool_of(urls: list[str], resolver=None, failures: int = 2) -> UpstreamPool:
    health = HealthSettings(failures=failures, cooldown_s=60)
    return UpstreamPool("m", ModelSettings(upstreams=urls), health, Metrics(), **({"resolver": resolver} if resolver else {}))


def test_pick_prefers_least_outstanding():
    pool = pool_of(["http://10.0.0.1:8000", "http://10.0.0.2:8000", "http://10.0.0.3:8000"])
    first, second, third = pool.endpoints
    first.acquire()
    first.acquire()
    second.acquire()
    assert pool.pick(set()) is third
    third.acquire()
    third.acquire()
    assert pool.pick(set()) is second


def test_equal_loads_take_turns_when_one_replica_is_busy():
    # The slow replica holds a request throughout; the other two must share the ties evenly.
    pool = pool_of(["http://10.0.0.1:8000", "http://10.0.0.2:8000", "http://10.0.0.3:8000"])
    busy, *idle = pool.endpoints
    busy.acquire()
    chosen = [pool.pick(set()) for _ in range(12)]
    assert [chosen.count(e) for e in idle] == [6, 6]
    assert all(a is not b for a, b in zip(chosen[:-1], chosen[1:], strict=True)), "ties alternate"


def test_every_upstream_cooling_down_still_gets_tried():
    pool = pool_of(["http://10.0.0.1:8000", "http://10.0.0.2:8000"], failures=1)
    for endpoint in pool.endpoints:
        pool.record_failure(endpoint)
    assert not pool.has_healthy()
    assert pool.pick(set()) in pool.endpoints


def test_model_healthy_upstreams_is_zero_for_an_empty_pool():
    async def resolver(host: str, port: int) -> list[str]:
        return []

    metrics = Metrics()
    settings = ModelSettings(upstreams=["http://vllm.ns.svc:8000"])
    pool = UpstreamPool("m", settings, HealthSettings(failures=1, cooldown_s=60), metrics, resolver)

    def healthy() -> float | None:
        return metrics.registry.get_sample_value("gateway_model_healthy_upstreams", {"model": "m"})

    assert healthy() == 0, "present (and 0) before DNS answered"
    asyncio.run(pool.refresh())
    assert pool.endpoints == [] and healthy() == 0
    assert metrics.registry.get_sample_value("gateway_upstream_healthy", {"model": "m", "upstream": "http://vllm.ns.svc:8000"}) is None


def test_dns_refresh_keeps_state_of_addresses_that_stay():
    answers = [["10.0.0.1", "10.0.0.2"], ["10.0.0.2", "10.0.0.3"], OSError("no answer")]

    async def resolver(host: str, port: int) -> list[str]:
        assert (host, port) == ("vllm.ns.svc", 8000)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    pool = pool_of(["http://vllm.ns.svc:8000"], resolver)
    assert pool.needs_dns and pool.endpoints == []
    asyncio.run(pool.refresh())
    assert [e.url for e in pool.endpoints] == ["http://10.0.0.1:8000", "http://10.0.0.2:8000"]
    assert {e.host for e in pool.endpoints} == {b"vllm.ns.svc:8000"}
    assert [e.connect_to for e in pool.endpoints] == [("10.0.0.1", 8000, None), ("10.0.0.2", 8000, None)]
    kept = pool.endpoints[1]
    kept.acquire()
    asyncio.run(pool.refresh())
    assert [e.url for e in pool.endpoints] == ["http://10.0.0.2:8000", "http://10.0.0.3:8000"]
    assert pool.endpoints[0] is kept and kept.outstanding == 1
    asyncio.run(pool.refresh())
    assert [e.url for e in pool.endpoints] == ["http://10.0.0.2:8000", "http://10.0.0.3:8000"]
