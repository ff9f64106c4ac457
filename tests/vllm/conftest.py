"""Fixtures of the real-peer layer: one vLLM server per session, and a gateway in front of it.

The vLLM venv comes from VLLM_VENV (set by `make test-vllm`), else `.venv-vllm` in the
repository. Without it the tests fail, never skip: this layer must not pass by doing nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.gateway.harness import ROOT, GatewayProcess, sha256
from tests.vllm.server import CLIENT, CLIENT_KEY, MODEL, VLLM_KEY, VllmServer, build_tiny_model

_started: list[VllmServer] = []


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    # absolute(), not resolve(): the venv's python is a symlink to the interpreter it was made from.
    python = (Path(os.environ.get("VLLM_VENV", ROOT / ".venv-vllm")) / "bin" / "python").absolute()
    if not python.exists():
        pytest.fail(f"no vLLM venv at {python.parent.parent}: run `make test-vllm` (it builds one) "
                    "or set VLLM_VENV to a venv with requirements-vllm.txt installed")
    return python


@pytest.fixture(scope="session")
def vllm(vllm_python, tmp_path_factory) -> VllmServer:
    """vLLM serving the tiny Llama as `tiny-llama` with random weights, key VLLM_KEY."""
    model_dir = build_tiny_model(vllm_python, tmp_path_factory.mktemp("tiny-llama"))
    server = VllmServer(vllm_python, model_dir, tmp_path_factory.mktemp("vllm") / "vllm.log")
    _started.append(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateway(vllm, tmp_path_factory) -> GatewayProcess:
    """The gateway with one client (CLIENT_KEY, every model) and vLLM as the model's only upstream."""
    config = {"models": {MODEL: {"upstreams": [vllm.url], "upstream_key_env": "VLLM_UPSTREAM_KEY"}},
              "clients": [{"name": CLIENT, "key_sha256": sha256(CLIENT_KEY), "models": ["*"]}]}
    process = GatewayProcess(config, tmp_path_factory.mktemp("gateway"), {"VLLM_UPSTREAM_KEY": VLLM_KEY})
    yield process
    process.stop()


def pytest_terminal_summary(terminalreporter):
    for server in _started:
        terminalreporter.write_line(f"vLLM answered /health {server.start_seconds:.1f} s after its start (log {server.log})")
