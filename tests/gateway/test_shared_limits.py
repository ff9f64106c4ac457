"""Shared limits: several real gateway processes against a real redis-server on 127.0.0.1.

A client's rpm and tpm hold exactly across replicas; the store killed or hanging mid-traffic fails
no request and shows in the metrics; when it is back, the shared limits resume by themselves.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from gateway.config import ConfigError, parse_config, resolve_secrets
from gateway.shared_limits import SCRIPT
from tests.gateway.harness import BASE_ENV, GatewayProcess, base_config, sha256, wait_for
from tests.gateway.store import PASSWORD, RedisServer

MESSAGES = [{"role": "user", "content": "hi"}]
# rpm / tpm of each client; every test uses clients of its own, so one store serves them all.
LIMITS = {"rpm6": {"rpm": 6}, "tpm20": {"tpm": 20}, "stream20": {"tpm": 20}, "steady": {"rpm": 100_000, "tpm": 10_000_000},
          "share": {"rpm": 4}, "after": {"rpm": 3}}
KEYS = {name: f"sk-test-shared-{name}" for name in LIMITS}
REPLICAS = 3
KEY_PREFIX = "llm-edge:test:"
# The store's "slow" threshold. Long, so that a stall of this loaded 2-core machine does not send
# a replica to its local shares and change the counts a test holds exactly; the hanging-store
# test sets a short one of its own.
TIMEOUT_MS = 1000


def shared_config(stub, store: RedisServer, timeout_ms: int = TIMEOUT_MS) -> dict:
    config = base_config([stub.replicas["c0"].url], [stub.replicas["o0"].url])
    config["clients"] = [{"name": name, "key_sha256": sha256(KEYS[name]), **limits} for name, limits in LIMITS.items()]
    config["shared_limits"] = {"url": store.url, "password_env": "LIMIT_STORE_PASSWORD", "timeout_ms": timeout_ms,
                               "fallback_replicas": 2, "key_prefix": KEY_PREFIX}
    return config


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def start_replicas(stub, store: RedisServer, count: int, tmp_path, password: str = PASSWORD,
                   timeout_ms: int = TIMEOUT_MS) -> list[GatewayProcess]:
    """`count` gateways on one store, started side by side (each takes about a second)."""
    env = {**BASE_ENV, "LIMIT_STORE_PASSWORD": password}
    config = shared_config(stub, store, timeout_ms)
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: GatewayProcess(config, tmp_path, env), range(count)))


@pytest.fixture(scope="module")
def replicas(stub, store, tmp_path_factory):
    gateways = start_replicas(stub, store, REPLICAS, tmp_path_factory.mktemp("replicas"))
    yield gateways
    for gateway in gateways:
        gateway.stop()


@pytest.fixture
def own_store(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def gateways(tmp_path):
    """Gateways a test starts itself, stopped after it."""
    started: list[GatewayProcess] = []
    yield started
    for gateway in started:
        gateway.stop()


async def _statuses(gateways, name: str, count: int) -> list[int]:
    """`count` requests of one client at once, spread over the gateways in turn; their statuses."""
    clients = [gateway.async_client(key=KEYS[name]) for gateway in gateways]

    async def one(index: int) -> int:
        try:
            await clients[index % len(clients)].chat.completions.create(model="chat", messages=MESSAGES)
            return 200
        except openai.APIStatusError as exc:
            return exc.status_code

    try:
        return list(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        for client in clients:
            await client.close()


def statuses(gateways, name: str, count: int) -> list[int]:
    return asyncio.run(_statuses(gateways, name, count))


def charged_in_turn(gateway, store: RedisServer, name: str) -> int:
    """One request's status, once its token charge is in the store. A replica sends a charge
    shortly after the reply (CHARGE_DELAY_S): without the wait, the next request on another
    replica could be admitted before it lands."""
    key = f"{KEY_PREFIX}{name}:tpm".encode()
    client = store.client()
    before = client.get(key)
    [status] = statuses([gateway], name, 1)
    if status == 200:
        assert wait_for(lambda: client.get(key) != before), "the reply's tokens reach the store"
    client.close()
    return status


def test_rpm_holds_exactly_across_replicas(replicas):
    # 12 requests at once over 3 replicas: each replica alone would admit 6.
    result = statuses(replicas, "rpm6", 12)
    assert sorted(result) == [200] * 6 + [429] * 6
    assert sum(g.metric("gateway_rate_limited_total", client="rpm6", limit="rpm") for g in replicas) == 6
    assert all(g.metric("gateway_limit_store_up") == 1 for g in replicas)


def test_tpm_holds_exactly_across_replicas(replicas, store):
    # Each reply uses 7 tokens (5 + 2), charged after it: 20 -> 13 -> 6 -> -1, then refused.
    result = [charged_in_turn(replicas[i % REPLICAS], store, "tpm20") for i in range(5)]
    assert result == [200, 200, 200, 429, 429]
    with pytest.raises(openai.RateLimitError) as caught:
        replicas[0].client(key=KEYS["tpm20"]).chat.completions.create(model="chat", messages=MESSAGES)
    # As the local buckets say it: a debt of 1 token plus 1, at 20/60 tokens per second.
    assert caught.value.response.headers["Retry-After"] in ("6", "7")
    assert "tokens per minute" in caught.value.message
    assert sum(g.metric("gateway_tokens_total", client="tpm20", model="chat", direction="in") for g in replicas) == 15


def test_a_stream_is_charged_to_the_shared_tpm_as_it_is_counted(replicas, store):
    """The store is charged the stream's final usage (5 + 3 tokens), not the sum of the usage vLLM
    puts on every chunk when the gateway asks for continuous usage (34 tokens)."""
    stream = replicas[0].client(key=KEYS["stream20"]).chat.completions.create(
        model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    assert [chunk.usage.total_tokens for chunk in stream if chunk.usage] == [8]
    # 20 - 8 = 12, then replies of 7 tokens on the other replicas: 12 -> 5 -> -2, then refused.
    assert wait_for(lambda: sum(g.metric("gateway_tokens_total", client="stream20", model="chat", direction="out")
                                for g in replicas) == 3)
    assert [charged_in_turn(replicas[1 + i % 2], store, "stream20") for i in range(3)] == [200, 200, 429]


def test_the_store_holds_client_names_and_numbers_only_and_every_key_expires(replicas, store):
    statuses(replicas, "rpm6", 2)
    statuses(replicas, "tpm20", 1)
    client = store.client()
    keys = sorted(key.decode() for key in client.keys("*"))
    assert keys and all(key.startswith(KEY_PREFIX) for key in keys)
    assert all(key.removeprefix(KEY_PREFIX).rsplit(":", 1)[0] in LIMITS for key in keys)
    assert all(0 < client.pttl(key) <= 60_000 * 8 for key in keys), "a TTL: a full bucket needs no key"
    stored = b" ".join(client.get(key) for key in keys)
    assert all(secret.encode() not in stored for secret in (*KEYS.values(), *map(sha256, KEYS.values())))


# One call's asks, as gateway/shared_limits.py documents its script: per client its rpm, its tpm,
# the tokens to charge and the requests to admit.
CALL = {"x": (3, 0, 0, 5), "y": (0, 10, 13, 2), "z": (0, 10, 8, 2), "w": (2, 10, 4, 3)}
ONE_CALL, A_CALL_EACH = "script-test:one-call:", "script-test:a-call-each:"


def _run_script(client, prefix: str, asks: dict[str, tuple[int, int, int, int]]) -> list[int]:
    keys = [f"{prefix}{name}:{limit}" for name in asks for limit in ("rpm", "tpm")]
    return client.eval(SCRIPT, len(keys), *keys, *(arg for values in asks.values() for arg in values))


def test_one_call_charges_then_admits_each_client_as_one_call_per_request_would(store):
    """A call carries each client once: the tokens its replies used, then its requests to admit.
    Its decisions, and what it leaves in the store, are those of a charge and then one call per
    request (any balance of one token admits; each admission spends one of rpm)."""
    client = store.client()
    together = _run_script(client, ONE_CALL, CALL)
    apart = []
    for name, (rpm, tpm, tokens, admissions) in CALL.items():
        _run_script(client, A_CALL_EACH, {name: (rpm, tpm, tokens, 0)})
        decisions = [_run_script(client, A_CALL_EACH, {name: (rpm, tpm, 0, 1)}) for _ in range(admissions)]
        admitted = sum(decision[0] for decision in decisions)
        apart += [admitted, *(decisions[-1][1:] if admitted < admissions else (0, 0))]
    # x: 3 of 5 (the 4th would wait 20 s of a 20 s refill); y: 10 - 13 refuses both (a debt of 3
    # tokens plus one: 24 s at 6 s a token); z: 10 - 8 leaves 2, both admitted; w: tpm admits,
    # rpm takes 2 of 3 (30 s).
    assert together == apart == [3, 1, 20, 0, 2, 24, 2, 0, 0, 2, 1, 30]
    for prefix in (ONE_CALL, A_CALL_EACH):
        ttls = {f"{name}:{limit}": client.pttl(f"{prefix}{name}:{limit}") for name in CALL for limit in ("rpm", "tpm")}
        assert ttls["x:tpm"] == ttls["y:rpm"] == ttls["z:rpm"] == -2, "a limit the client does not have leaves no key"
        assert 59_000 < ttls["x:rpm"] <= 60_000 and 77_000 < ttls["y:tpm"] <= 78_000, ttls
        assert 47_000 < ttls["z:tpm"] <= 48_000 and 59_000 < ttls["w:rpm"] <= 60_000 and 23_000 < ttls["w:tpm"] <= 24_000
    client.close()


class Traffic(threading.Thread):
    """One client's requests to the gateways in turn, until stopped (bounded: at most 20 s)."""

    def __init__(self, gateways, name: str):
        super().__init__(daemon=True)
        self.clients = [g.client(key=KEYS[name], timeout=5) for g in gateways]
        self.results: list[int | str] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 20
        while not self.stopped.is_set() and time.monotonic() < deadline:
            client = self.clients[len(self.results) % len(self.clients)]
            try:
                client.chat.completions.create(model="chat", messages=MESSAGES)
                self.results.append(200)
            except openai.APIStatusError as exc:
                self.results.append(exc.status_code)
            except openai.APIError as exc:
                self.results.append(type(exc).__name__)
            time.sleep(0.01)

    def finish(self) -> list[int | str]:
        self.stopped.set()
        self.join(10)
        return self.results


def _store_up(gateways, value: float) -> bool:
    return all(g.metric("gateway_limit_store_up") == value for g in gateways)


def test_store_killed_mid_traffic_fails_no_request_and_shared_limits_resume(replicas, store):
    traffic = Traffic(replicas, "steady")
    traffic.start()
    wait_for(lambda: len(traffic.results) >= 10)
    store.kill()
    try:
        assert wait_for(lambda: _store_up(replicas, 0)), "the metric shows the store down"
        assert all(g.metric("gateway_limit_store_errors_total", error="connection") >= 1 for g in replicas)
        # Meanwhile each replica allows its share, rpm / fallback_replicas: 4 / 2.
        assert sorted(statuses(replicas, "share", 9)) == [200] * 6 + [429] * 3
        served_while_down = len(traffic.results)
    finally:
        store.start()
    assert wait_for(lambda: _store_up(replicas, 1)), "the replicas reach the store again by themselves"
    wait_for(lambda: len(traffic.results) >= served_while_down + 10)
    results = traffic.finish()
    assert set(results) == {200}, "no request failed because the store did"
    # The store came back empty; its limits are shared again: 3 over the replicas, not 3 each.
    assert sorted(statuses(replicas, "after", 6)) == [200] * 3 + [429] * 3


def test_a_hanging_store_costs_a_request_at_most_its_timeout_then_none(stub, own_store, gateways, tmp_path):
    timeout_s = 0.3
    gateways += start_replicas(stub, own_store, 1, tmp_path, timeout_ms=int(timeout_s * 1000))
    [gateway] = gateways
    client = gateway.client(key=KEYS["steady"], timeout=5)
    client.chat.completions.create(model="chat", messages=MESSAGES)
    own_store.pause()
    durations = []
    for _ in range(5):
        started = time.monotonic()
        client.chat.completions.create(model="chat", messages=MESSAGES)
        durations.append(time.monotonic() - started)
    # The first waits about timeout_ms for the store; the next ones do not wait for it at all
    # (well under timeout_ms: a request itself takes a few ms, more on a busy machine).
    assert timeout_s - 0.01 <= durations[0] < timeout_s + 0.5, durations  # uvloop times in whole ms
    assert max(durations[1:]) < timeout_s / 2, durations
    assert gateway.metric("gateway_limit_store_up") == 0
    assert gateway.metric("gateway_limit_store_errors_total", error="timeout") >= 1
    own_store.resume()
    assert wait_for(lambda: gateway.metric("gateway_limit_store_up") == 1)


async def _burst_while_the_store_fails(gateway, store: RedisServer, failure: str, count: int) -> list[float | str]:
    """`count` requests at once while the store hangs ("hangs") or hangs and then dies ("dies"):
    each one's time to a 200, or what it got instead."""
    client = gateway.async_client(key=KEYS["steady"], timeout=8)
    store.pause()

    async def one() -> float | str:
        started = time.monotonic()
        try:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
        except openai.APIError as exc:
            return type(exc).__name__
        return time.monotonic() - started

    async def kill_soon() -> None:
        await asyncio.sleep(0.3)  # requests are out and queued by now, well within the store's timeout
        store.kill()

    try:
        return list(await asyncio.gather(*(one() for _ in range(count)),
                                         *([kill_soon()] if failure == "dies" else [])))[:count]
    finally:
        await client.close()


@pytest.mark.parametrize("failure", ["hangs", "dies"])
def test_requests_queued_behind_calls_to_a_failing_store_are_decided_locally(stub, own_store, gateways, tmp_path,
                                                                               failure):
    # Concurrent requests, so that some wait behind the calls in flight (at most two) when those
    # are given up on: by the timeout when the store hangs, by the connection's end when it dies.
    timeout_s = 0.3 if failure == "hangs" else 1.0  # 1000 ms: the most timeout_ms allows
    gateways += start_replicas(stub, own_store, 1, tmp_path, timeout_ms=int(timeout_s * 1000))
    [gateway] = gateways
    assert statuses(gateways, "steady", 1) == [200]
    outcomes = asyncio.run(_burst_while_the_store_fails(gateway, own_store, failure, 32))
    failed = [o for o in outcomes if isinstance(o, str)]
    assert not failed, f"no request fails or waits on because the store did: {failed}"
    # Every one is decided once the store's calls are given up on: after the 0.3 s timeout, or
    # at the connection's end 0.3 s in; none waits anywhere near the client's own 8 s timeout.
    assert max(outcomes) < 0.3 + 2.0, outcomes
    assert gateway.metric("gateway_limit_store_up") == 0
    error = "timeout" if failure == "hangs" else "connection"
    assert gateway.metric("gateway_limit_store_errors_total", error=error) >= 1


def test_a_store_down_at_start_up_or_refusing_the_password_fails_no_request(stub, own_store, gateways, tmp_path):
    own_store.kill()
    gateways += start_replicas(stub, own_store, 1, tmp_path)
    gateways += start_replicas(stub, own_store, 1, tmp_path, password="not-the-password")
    late, refused = gateways
    assert statuses(gateways, "steady", 2) == [200, 200]
    assert late.metric("gateway_limit_store_up") == 0
    own_store.start()
    assert wait_for(lambda: late.metric("gateway_limit_store_up") == 1)
    assert sorted(statuses([late], "after", 4)) == [200] * 3 + [429]
    # The store answers the other replica, and refuses this one's password: still up 0, no failed request.
    assert wait_for(lambda: refused.metric("gateway_limit_store_errors_total", error="response") >= 1)
    assert statuses([refused], "steady", 1) == [200]
    assert refused.metric("gateway_limit_store_up") == 0


def _config(**shared) -> dict:
    return {"models": {"m": {"upstreams": ["http://127.0.0.1:1"]}},
            "clients": [{"name": "a", "key_sha256": "0" * 64}], "shared_limits": shared}


@pytest.mark.parametrize(("shared", "problem"), [
    ({}, "shared_limits: give exactly one of url and url_env"),
    ({"url": "redis://a:6379", "url_env": "URL"}, "shared_limits: give exactly one of url and url_env"),
    ({"url": "http://a:6379"}, "shared_limits.url: must be a redis:// or rediss:// URL"),
    ({"url": "redis://a:6379/limits"}, "shared_limits.url: must have no path other than a database number"),
    ({"url": "redis://a:6379", "timeout_ms": 0}, "shared_limits.timeout_ms: Input should be greater than 0"),
])
def test_shared_limits_config_errors_name_the_field(shared, problem):
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(**shared))
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_store_url_and_password_from_the_environment_are_checked_and_never_repeated():
    config = parse_config(_config(url_env="STORE_URL", password_env="STORE_PASSWORD"))
    with pytest.raises(ConfigError) as caught:
        resolve_secrets(config, {"STORE_URL": "https://user:hunter2@store:6379"})
    assert caught.value.problems == [
        "shared_limits.url_env: environment variable STORE_URL must be a redis:// or rediss:// URL such as "
        "redis://limits.llm-edge.svc:6379/0",
        "shared_limits.password_env: environment variable STORE_PASSWORD is not set",
    ]
    resolved = resolve_secrets(config, {"STORE_URL": "rediss://:hunter2@store:6379/1", "STORE_PASSWORD": "pw"})
    assert (resolved.limit_store_url, resolved.limit_store_password) == ("rediss://:hunter2@store:6379/1", "pw")
