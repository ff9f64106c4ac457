"""Fixtures: a stub upstream with replicas, and real gateway processes on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.gateway.harness import BASE_ENV, KEYS, GatewayProcess, base_config, sha256, wait_for
from tests.gateway.scripted_upstream import ThreadedUpstream
from tests.gateway.upstream_stub import StubUpstream


@pytest.fixture(scope="session")
def stub():
    """Shared upstream: replicas c0, c1, c2 serve model `chat`, o0 serves `other`."""
    upstream = StubUpstream()
    upstream.replicas = {name: upstream.replica(name) for name in ("c0", "c1", "c2", "o0")}
    yield upstream
    upstream.close()


@pytest.fixture(scope="session")
def gateway(stub, tmp_path_factory):
    """One gateway for the tests that do not change or stop their upstreams."""
    r = stub.replicas
    process = GatewayProcess(base_config([r["c0"].url, r["c1"].url, r["c2"].url], [r["o0"].url]),
                             tmp_path_factory.mktemp("gateway"), BASE_ENV)
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def _fresh_stub_state(request):
    if "stub" in request.fixturenames:
        state = request.getfixturevalue("stub").state
        # A request of the previous test can still be ending in the stub (a stream its gateway cut):
        # let it end first, or it lands in this test's counts.
        wait_for(lambda: not any(state.in_flight.values()), 5)
        state.reset()


@pytest.fixture
def own_stub():
    """An upstream of the test's own, for tests that kill replicas."""
    upstream = StubUpstream()
    yield upstream
    upstream.close()


@pytest.fixture
def start_gateway(tmp_path):
    started = []

    def start(config: dict, env: dict[str, str] | None = None, open_files: int | None = None) -> GatewayProcess:
        process = GatewayProcess(config, tmp_path, {**BASE_ENV, **(env or {})}, open_files)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def scripted_gateway(start_gateway):
    """A gateway (client `full`, model `m`) in front of a scripted upstream: call it with the script."""
    upstreams = []

    def start(script):
        upstream = ThreadedUpstream(script)
        upstreams.append(upstream)
        return start_gateway({"models": {"m": {"upstreams": [upstream.url], "upstream_key_env": "STUB_UPSTREAM_KEY"}},
                              "clients": [{"name": "full", "key_sha256": sha256(KEYS["full"])}]})

    yield start
    for upstream in upstreams:
        upstream.close()
