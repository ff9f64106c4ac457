"""vLLM's own OpenAI-compatible server (CPU build) as a process on 127.0.0.1, for tests/vllm."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import openai

from tests.gateway.harness import free_port

MODEL = "tiny-llama"
# The same tiny Llama under vLLM's pooling runner, which mounts routes by task
# (V/entrypoints/pooling/*/api_router.py, V = vLLM 0.32's site-packages/vllm):
# `--convert embed`: /v1/embeddings, /pooling, /score, /v1/score, /rerank, /v1/rerank, /v2/rerank;
# `--convert classify`: /pooling, /classify.
EMBED_MODEL = "tiny-embed"
CLASSIFY_MODEL = "tiny-classify"
# The embedding runner in float32: in bfloat16, vLLM 0.32 picks its AMX attention kernel on CPUs
# that have AMX (V/v1/attention/backends/cpu_attn.py: _get_attn_isa), and on the embedding runner
# its worker dies of an illegal instruction in cpu_attention_with_kv_cache (seen on a Xeon with
# amx_bf16 and amx_tile; the generating and classifying runners run). float32 takes the vectorised one ("vec").
KINDS = {MODEL: (), EMBED_MODEL: ("--convert", "embed", "--dtype", "float32"),
         CLASSIFY_MODEL: ("--convert", "classify")}
# vLLM's own key (`--api-key`): only the gateway holds it, as in the cluster.
VLLM_KEY = "sk-vllm-upstream-key"
# The gateway's one client (conftest.py: gateway), allowed every model.
CLIENT = "vllm-layer"
CLIENT_KEY = "sk-test-vllm-layer"
# How long vLLM may take to answer /health: 40-70 s on 2 cores here, mostly imports.
START_TIMEOUT_S = 300
STOP_TIMEOUT_S = 30
# Offline, no telemetry; a 1 GiB KV cache (the CPU build's default would take 4 GiB).
# Unbuffered: the log (access lines, the tail shown on a failed start) is written as it happens.
ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
       "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def build_tiny_model(python: Path, out: Path) -> Path:
    """The tiny Llama of tiny_model.py, built by the vLLM venv's Python (it has `tokenizers`)."""
    subprocess.run([str(python), str(Path(__file__).with_name("tiny_model.py")), str(out)], check=True, timeout=60)
    return out


class VllmServer:
    """`python -m vllm.entrypoints.openai.api_server` serving one model with random weights.

    It forks an EngineCore and a worker process; the server gets a session of its own, so
    stop() can signal all three as one process group.
    """

    def __init__(self, python: Path, model_dir: Path, log: Path, model: str = MODEL):
        self.model = model
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                   "--served-model-name", model, "--load-format", "dummy", "--enforce-eager", "--dtype", "bfloat16",
                   "--host", "127.0.0.1", "--port", str(self.port), "--api-key", VLLM_KEY, *KINDS[model]]
        # vLLM's caches and config next to the log, not in the home directory.
        env = {**os.environ, **ENV, "VLLM_CACHE_ROOT": str(log.parent / "cache"), "VLLM_CONFIG_ROOT": str(log.parent / "config")}
        started = time.monotonic()
        with log.open("wb") as log_file:
            self.proc = subprocess.Popen(command, cwd=log.parent, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        try:
            self._wait_healthy(started + START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def _wait_healthy(self, deadline: float) -> None:
        while True:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=2).close()
                return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.proc.returncode} before /health answered; "
                                   f"the end of {self.log}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"vLLM did not answer /health within {START_TIMEOUT_S} s; "
                                   f"the end of {self.log}:\n{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def client(self, key: str = VLLM_KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0)

    def requests_logged(self, method: str, path: str) -> int:
        """Requests for `method path` in uvicorn's access log, which has every request vLLM answered.

        Its `http_requests_total` would not do: it leaves out the 401s of vLLM's key check.
        """
        request_line = f'"{method} {path} HTTP/1.1"'
        return sum(request_line in line for line in self.log.read_text(errors="replace").splitlines())

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL to what is left after STOP_TIMEOUT_S."""
        group = self.proc.pid
        _signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        # poll() reaps the leader: an unreaped leader would keep the group alive as a zombie.
        while (self.proc.poll() is None or _group_alive(group)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(group):
            _signal_group(group, signal.SIGKILL)
        self.proc.wait()


def _signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
