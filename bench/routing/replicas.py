"""vLLM CPU servers for the routing benchmark, on 127.0.0.1, and what their /metrics say."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

# The cache each replica gets (GiB) unless told its size in blocks: far more than the workload
# needs (see docs/performance.md, "Prefix-affinity routing").
KV_CACHE_GIB = "1"
# vLLM's KV block on CPU, in tokens (V/platforms/cpu.py:292-293): the unit of --num-gpu-blocks-override.
BLOCK_TOKENS = 128
START_TIMEOUT_S = 600
KEY = "sk-bench-routing-vllm"
# Served names: one per benchmark arm, so one gateway holds every arm as a model of its own
# (the gateway forwards the body's `model` as it is, and vLLM answers to any of these).
SERVED_NAMES = ("bench", "single", "single-2", "single-3", "affinity-2", "least-2", "affinity-3", "least-3")
_COUNTER = re.compile(r'^(vllm:[a-z_]+_total)\{[^}]*\} ([0-9.e+]+)$', re.M)


class Replica:
    """One `vllm.entrypoints.openai.api_server` with random weights; its own session, so stop() ends its workers."""

    def __init__(self, python: Path, model_dir: Path, workdir: Path, port: int, kv_blocks: int | None = None):
        """`kv_blocks`: the KV cache's size in blocks of BLOCK_TOKENS (vLLM's --num-gpu-blocks-override,
        which the CPU worker honours too); None for KV_CACHE_GIB."""
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / "vllm.log"
        workdir.mkdir(parents=True, exist_ok=True)
        command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                   "--served-model-name", *SERVED_NAMES, "--load-format", "dummy", "--enforce-eager",
                   "--dtype", "bfloat16", "--max-model-len", "4096", "--host", "127.0.0.1", "--port", str(port),
                   "--api-key", KEY, "--disable-uvicorn-access-log"]
        if kv_blocks is not None:
            command += ["--num-gpu-blocks-override", str(kv_blocks)]
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": KV_CACHE_GIB, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_CACHE_ROOT": str(workdir / "cache"),
               "VLLM_CONFIG_ROOT": str(workdir / "config"),
               # /reset_prefix_cache between arms (a development route: fine on 127.0.0.1 only).
               "VLLM_SERVER_DEV_MODE": "1",
               # Two cores for three replicas: one thread each, or their OpenMP pools fight.
               "OMP_NUM_THREADS": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.proc.returncode}; see {self.log}")
            try:
                urllib.request.urlopen(self.url + "/health", timeout=2).close()
                return
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"vLLM did not answer /health in {START_TIMEOUT_S} s; see {self.log}")

    def counters(self) -> dict[str, float]:
        """vLLM's counters summed over their labels (prefix cache queries and hits, requests, tokens)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as reply:
            text = reply.read().decode()
        totals: dict[str, float] = {}
        for name, value in _COUNTER.findall(text):
            totals[name] = totals.get(name, 0.0) + float(value)
        return totals

    def reset_prefix_cache(self) -> None:
        request = urllib.request.Request(self.url + "/reset_prefix_cache", method="POST",
                                         headers={"Authorization": f"Bearer {KEY}"})
        urllib.request.urlopen(request, timeout=30).close()

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
