"""Real gateway processes on 127.0.0.1, their config and the keys the tests use."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import yaml
from multidict import CIMultiDict

ROOT = Path(__file__).resolve().parents[2]
KEYS = {name: f"sk-test-{name}" for name in ("full", "chat-only", "rpm", "tpm", "from-env")}
UPSTREAM_KEY = "upstream-secret-key"
ORIGIN = "https://app.example.com"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewayProcess:
    def __init__(self, config: dict, tmp_path: Path, env: dict[str, str] | None = None, open_files: int | None = None):
        self.port = free_port()
        self.metrics_port = free_port()
        config = {"listen": f"127.0.0.1:{self.port}", "metrics_listen": f"127.0.0.1:{self.metrics_port}",
                  "drain_delay_s": 0, **config}
        path = tmp_path / f"gateway-{self.port}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log = tmp_path / f"gateway-{self.port}.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "--config", str(path)], cwd=ROOT,
                                     env={**os.environ, **(env or {})}, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     preexec_fn=(lambda: _limit_open_files(open_files)) if open_files else None)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"gateway did not start:\n{self.log.read_text()}") from None
                time.sleep(0.05)

    def client(self, key: str = KEYS["full"], **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **kwargs)

    def async_client(self, key: str = KEYS["full"], **kwargs) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **kwargs)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as reply:
            return reply.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample, 0 if it is not there yet."""
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.metrics().splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            sample_name, _, label_text = series.partition("{")
            if sample_name == name and ",".join(sorted(label_text.rstrip("}").split(","))) == wanted:
                return float(value)
        return 0.0

    def wait_for_metric(self, name: str, value: float, timeout_s: float = 5.0, **labels: str) -> float:
        """The sample once it equals `value`, or its last value after `timeout_s`.

        A request is counted when its handler ends, which for a stream can be just after the
        client has read the final event.
        """
        deadline = time.monotonic() + timeout_s
        while (current := self.metric(name, **labels)) != value and time.monotonic() < deadline:
            time.sleep(0.02)
        return current

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


def raw(gateway, path: str, body: bytes | None = None, method: str | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, CIMultiDict[str], bytes]:
    """One request with urllib: the status, the reply's headers (any case) and its body, whatever the status."""
    request = urllib.request.Request(gateway.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, CIMultiDict(reply.headers.items()), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, CIMultiDict(error.headers.items()), error.read()


def wait_for(predicate, timeout_s: float = 5.0):
    """The predicate's first true value, polled until `timeout_s`; its last value after that."""
    deadline = time.monotonic() + timeout_s
    while not (found := predicate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def _limit_open_files(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def base_config(chat_upstreams: list[str], other_upstreams: list[str]) -> dict:
    return {
        "models": {
            "chat": {"upstreams": chat_upstreams, "upstream_key_env": "STUB_UPSTREAM_KEY"},
            "other": {"upstreams": other_upstreams},
        },
        "clients": [
            {"name": "full", "key_sha256": sha256(KEYS["full"]), "models": ["*"]},
            {"name": "chat-only", "key_sha256": sha256(KEYS["chat-only"]), "models": ["chat"]},
            {"name": "rpm", "key_sha256": sha256(KEYS["rpm"]), "rpm": 2},
            {"name": "tpm", "key_sha256": sha256(KEYS["tpm"]), "tpm": 10},
            {"name": "from-env", "key_sha256_env": "FROM_ENV_KEY_SHA256", "models": ["other"]},
        ],
        "cors_origins": [ORIGIN],
        "max_body_bytes": 64 * 1024,
        "health": {"failures": 2, "cooldown_s": 1.0},
    }


BASE_ENV = {"STUB_UPSTREAM_KEY": UPSTREAM_KEY, "FROM_ENV_KEY_SHA256": sha256(KEYS["from-env"])}


def conversation(seed: int, turns: int, system: str) -> list[list[dict]]:
    """The message lists a client sends, turn by turn: each resends the whole history after `system`.
    Its user turns start "Conversation <seed>,"."""
    history = [{"role": "system", "content": system}]
    requests = []
    for turn in range(turns):
        history.append({"role": "user", "content": f"Conversation {seed}, question {turn}: " + "why? " * 30})
        requests.append(list(history))
        history.append({"role": "assistant", "content": f"Answer {turn} of conversation {seed}. " * 8})
    return requests
