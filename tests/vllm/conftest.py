"""Fixtures of the real-peer layer: vLLM servers, one at a time, and a gateway in front of each.

The vLLM venv comes from VLLM_VENV (set by `make test-vllm`), else `.venv-vllm` in the
repository. Without it the tests fail, never skip: this layer must not pass by doing nothing.

Each vLLM server takes about 3 GB and most of a minute to start, so only one runs at a time:
the tests are ordered by the model they need (the generating one first, then the pooling ones,
then the routing tests' pair of generating replicas, the only time two run), and asking for
another model stops the server of the last one.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.gateway.harness import ROOT, GatewayProcess, sha256
from tests.vllm.server import (
    CLASSIFY_MODEL,
    CLIENT,
    CLIENT_KEY,
    EMBED_MODEL,
    KINDS,
    MODEL,
    VLLM_KEY,
    VllmServer,
    build_tiny_model,
)

# Clients of every gateway here: CLIENT may use the server's model; TPM_CLIENT too, with a
# tokens-per-minute limit; OTHER_CLIENT may only use OTHER_MODEL (another name for the same
# server), never the server's own model name.
TPM_CLIENT, TPM_CLIENT_KEY, TPM = "tpm-limited", "sk-test-vllm-tpm", 20
OTHER_CLIENT, OTHER_CLIENT_KEY, OTHER_MODEL = "other-only", "sk-test-vllm-other", "not-this-one"
_FIXTURE_ORDER = ("vllm", "embed_vllm", "classify_vllm", "vllm_pair")


class OneServer:
    """The vLLM server running now, and the gateway in front of it."""

    def __init__(self, python: Path, tmp_path_factory: pytest.TempPathFactory):
        self._python = python
        self._tmp = tmp_path_factory
        self._model_dir: Path | None = None
        self.server: VllmServer | None = None
        self.gateway: GatewayProcess | None = None
        self.pair: list[VllmServer] | None = None
        self.started: list[VllmServer] = []

    def serve(self, model: str) -> tuple[VllmServer, GatewayProcess]:
        if self.pair is not None or self.server is None or self.server.model != model:
            self.stop()
            if self._model_dir is None:
                self._model_dir = build_tiny_model(self._python, self._tmp.mktemp("tiny-llama"))
            self.server = VllmServer(self._python, self._model_dir, self._tmp.mktemp("vllm") / f"{model}.log", model)
            self.started.append(self.server)
            self.gateway = GatewayProcess(gateway_config(self.server), self._tmp.mktemp("gateway"),
                                          {"VLLM_UPSTREAM_KEY": VLLM_KEY})
        assert self.gateway is not None
        return self.server, self.gateway

    def serve_pair(self) -> list[VllmServer]:
        """Two replicas of MODEL, started side by side (the single server stops first)."""
        if self.pair is None:
            self.stop()
            if self._model_dir is None:
                self._model_dir = build_tiny_model(self._python, self._tmp.mktemp("tiny-llama"))
            model_dir = self._model_dir
            with ThreadPoolExecutor(2) as pool:
                self.pair = list(pool.map(lambda i: VllmServer(self._python, model_dir,
                                                               self._tmp.mktemp("vllm") / f"replica-{i}.log"), range(2)))
            self.started += self.pair
        return self.pair

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        if self.server is not None:
            self.server.stop()
        for server in self.pair or ():
            server.stop()
        self.server = self.gateway = self.pair = None


def gateway_config(server: VllmServer) -> dict:
    return {"models": {name: {"upstreams": [server.url], "upstream_key_env": "VLLM_UPSTREAM_KEY"}
                       for name in (server.model, OTHER_MODEL)},
            "clients": [{"name": CLIENT, "key_sha256": sha256(CLIENT_KEY), "models": [server.model]},
                        {"name": TPM_CLIENT, "key_sha256": sha256(TPM_CLIENT_KEY), "models": [server.model], "tpm": TPM},
                        {"name": OTHER_CLIENT, "key_sha256": sha256(OTHER_CLIENT_KEY), "models": [OTHER_MODEL]}]}


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    # absolute(), not resolve(): the venv's python is a symlink to the interpreter it was made from.
    python = (Path(os.environ.get("VLLM_VENV", ROOT / ".venv-vllm")) / "bin" / "python").absolute()
    if not python.exists():
        pytest.fail(f"no vLLM venv at {python.parent.parent}: run `make test-vllm` (it builds one) "
                    "or set VLLM_VENV to a venv with requirements-vllm.txt installed")
    return python


@pytest.fixture(scope="session")
def one_server(vllm_python, tmp_path_factory, request) -> OneServer:
    servers = OneServer(vllm_python, tmp_path_factory)
    request.config.stash[_SERVERS] = servers
    yield servers
    servers.stop()


@pytest.fixture
def vllm(one_server) -> VllmServer:
    """vLLM generating with the tiny Llama (random weights) as `tiny-llama`, key VLLM_KEY."""
    return one_server.serve(MODEL)[0]


@pytest.fixture
def gateway(one_server) -> GatewayProcess:
    """The gateway in front of `vllm`: clients CLIENT, TPM_CLIENT and OTHER_CLIENT."""
    return one_server.serve(MODEL)[1]


@pytest.fixture
def embed_vllm(one_server) -> tuple[VllmServer, GatewayProcess]:
    """vLLM's pooling runner with `--convert embed` as `tiny-embed`, and the gateway in front of it."""
    return one_server.serve(EMBED_MODEL)


@pytest.fixture
def classify_vllm(one_server) -> tuple[VllmServer, GatewayProcess]:
    """vLLM's pooling runner with `--convert classify` as `tiny-classify`, and the gateway in front of it."""
    return one_server.serve(CLASSIFY_MODEL)


@pytest.fixture
def vllm_pair(one_server) -> list[VllmServer]:
    """Two vLLM replicas generating with the tiny Llama as `tiny-llama`, key VLLM_KEY; no gateway (tests start theirs)."""
    return one_server.serve_pair()


_SERVERS = pytest.StashKey[OneServer]()
assert set(KINDS) == {MODEL, EMBED_MODEL, CLASSIFY_MODEL}


def pytest_collection_modifyitems(items):
    """The tests of one model together, so that each vLLM server starts once."""
    def kind(item) -> int:
        names = getattr(item, "fixturenames", ())
        return max((_FIXTURE_ORDER.index(name) for name in names if name in _FIXTURE_ORDER), default=0)

    items.sort(key=kind)  # stable: the order within a kind stays the file order


def pytest_terminal_summary(terminalreporter, config):
    servers = config.stash.get(_SERVERS, None)
    for server in servers.started if servers else ():
        terminalreporter.write_line(f"vLLM ({server.model}) answered /health {server.start_seconds:.1f} s after its start "
                                    f"(log {server.log})")
