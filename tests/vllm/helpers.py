"""Raw HTTP to vLLM or the gateway (the SDKs cannot send `"stream": "yes"`), and the gateway's token counters."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable

import httpx

from tests.gateway.harness import GatewayProcess
from tests.vllm.server import CLIENT, CLIENT_KEY, VLLM_KEY, VllmServer

# vLLM's own request fields: every reply max_tokens long (random weights pick the end token at
# any step), and the token ids on every chunk (chunks do not count tokens: vLLM merges steps).
EXTRA = {"ignore_eos": True, "return_token_ids": True}


def post(target: VllmServer | GatewayProcess, path: str, body: dict | None = None, key: str | None = None,
         headers: dict[str, str] | None = None, method: str = "POST", **kwargs) -> httpx.Response:
    """One request straight to vLLM (with its key) or through the gateway (with a client's key)."""
    key = key or (VLLM_KEY if isinstance(target, VllmServer) else CLIENT_KEY)
    return httpx.request(method, target.url + path, json=body, headers={"Authorization": f"Bearer {key}", **(headers or {})},
                         timeout=60, **kwargs)


def events(reply: httpx.Response) -> list[dict]:
    """The JSON events of an SSE reply, without [DONE]."""
    return [json.loads(line[5:]) for line in reply.text.split("\n")
            if line.startswith("data:") and line[5:].strip() != "[DONE]"]


def is_stream(reply: httpx.Response) -> bool:
    return reply.headers.get("content-type", "").startswith("text/event-stream")


def tokens(gateway: GatewayProcess, model: str, client: str = CLIENT) -> tuple[float, float]:
    return tuple(gateway.metric("gateway_tokens_total", client=client, model=model, direction=direction)
                 for direction in ("in", "out"))


def counted_since(gateway: GatewayProcess, before: tuple[float, float], expected: tuple[int, int], model: str,
                  client: str = CLIENT, timeout_s: float = 3.0) -> tuple[float, float]:
    """Tokens counted since `before`, once they equal `expected` or after `timeout_s` (counted as a handler ends)."""
    deadline = time.monotonic() + timeout_s
    while (now := tokens(gateway, model, client)) != (before[0] + expected[0], before[1] + expected[1]) \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    return now[0] - before[0], now[1] - before[1]


def settled(gateway: GatewayProcess, model: str, client: str, quiet_s: float = 0.5) -> tuple[float, float]:
    """The counters once they stopped moving for `quiet_s` (a stream the client left is counted when it ends)."""
    return steady(lambda: tokens(gateway, model, client), quiet_s)


def steady(read: Callable[[], object], quiet_s: float = 0.5):
    """What `read` returns once it stopped changing for `quiet_s`."""
    last, since = read(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.05)
        if (now := read()) != last:
            last, since = now, time.monotonic()
    return last


def counter(server: VllmServer, name: str) -> float:
    """A counter of vLLM's own /metrics, summed over its labels."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(float(value) for value in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M))
