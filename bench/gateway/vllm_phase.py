"""Real vLLM (CPU build) in the benchmark: time to the first token and the gap between tokens,
straight to vLLM and through the gateway, in alternating requests of one run.

vLLM serves the tiny random-weight Llama of tests/vllm (tests/vllm/server.py starts it, from the
venv in VLLM_VENV or .venv-vllm). All of vLLM (HTTP server, engine, worker) runs on core 0, the
streams' client and the gateway on core 1: the client then never takes vLLM's core, in either
path, and what the gateway adds is its own work, on a core it shares with the client. Every stream asks
for `max_tokens` tokens with `ignore_eos` (random weights may end a reply at any step) and
`include_usage`, as a metering client would; one token is one content chunk, unless vLLM merged
several into one chunk (it does when its HTTP side falls behind), which is what a client sees.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

MODEL = "tiny-llama"
# The gateway runs on the benchmark's server core (1), as in the other phases.
VLLM_CORE, CLIENT_CORE = 0, 1


@dataclass
class Streams:
    ttft_ms: list[float] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)
    errors: int = 0


@dataclass
class VllmResult:
    direct: Streams
    gateway: Streams
    # Per round, the gateway's time to first token minus direct's, from the two streams of that
    # round: vLLM's own time moves by milliseconds with the machine's other load, and the pairs
    # cancel what both streams of a round share.
    paired_ttft_ms: list[float]
    rounds: int
    tokens: int
    start_s: float


def vllm_python(root: Path) -> Path | None:
    python = (Path(os.environ.get("VLLM_VENV", root / ".venv-vllm")) / "bin" / "python").absolute()
    return python if python.exists() else None


async def _stream(session: aiohttp.ClientSession, url: str, key: str, tokens: int, into: Streams) -> float | None:
    """One stream; its time to first token (also added to `into`), None if it failed."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello world"}], "max_tokens": tokens,
            "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True}
    started = time.perf_counter()
    last = None
    gaps = []
    async with session.post(url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}) as reply:
        if reply.status != 200:
            await reply.read()
            into.errors += 1
            return None
        async for line in reply.content:
            if not line.startswith(b"data: {"):
                continue
            choices = json.loads(line[6:])["choices"]
            if not choices or not choices[0]["delta"].get("content"):
                continue  # the role chunk, a token held back as a partial character, the usage chunk
            now = time.perf_counter()
            if last is None:
                into.ttft_ms.append((now - started) * 1000)
            else:
                gaps.append((now - last) * 1000)
            last = now
    if last is None:
        into.errors += 1  # no token came
        return None
    into.gaps_ms.extend(gaps)
    return into.ttft_ms[-1]


async def _alternate(direct: tuple[str, str], gateway: tuple[str, str], rounds: int,
                     tokens: int) -> tuple[Streams, Streams, list[float]]:
    results = Streams(), Streams()
    paired: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        for _ in range(3):  # warm-up: connection pools, vLLM's first requests
            for url, key in (direct, gateway):
                await _stream(session, url, key, tokens, Streams())
        for number in range(rounds):
            # Alternate which goes first, so neither always follows the other's tail.
            pair = [(direct, results[0]), (gateway, results[1])]
            if number % 2:
                pair.reverse()
            ttft = {}
            for (url, key), into in pair:
                ttft[url] = await _stream(session, url, key, tokens, into)
            if None not in ttft.values():
                paired.append(ttft[gateway[0]] - ttft[direct[0]])
    return *results, paired


def measure(root: Path, start_gateway, key: str, rounds: int = 100, tokens: int = 32) -> VllmResult | str:
    """Start vLLM and a gateway in front of it (`start_gateway(models, env)` gives its base URL; `key` is the
    gateway's client key), measure, stop vLLM. Returns why not instead when there is no vLLM venv."""
    python = vllm_python(root)
    if python is None:
        return "no vLLM venv (VLLM_VENV or .venv-vllm; `make vllm-venv` builds one)"
    from tests.vllm.server import VLLM_KEY, VllmServer, build_tiny_model

    affinity = os.sched_getaffinity(0)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        os.sched_setaffinity(0, {VLLM_CORE})  # vLLM's processes inherit it
        server = VllmServer(python, build_tiny_model(python, directory / "model"), directory / "vllm.log")
        try:
            gateway_url = start_gateway({MODEL: {"upstreams": [server.url], "upstream_key_env": "BENCH_VLLM_KEY"}},
                                        {"BENCH_VLLM_KEY": VLLM_KEY})
            os.sched_setaffinity(0, {CLIENT_CORE})
            direct, through, paired = asyncio.run(_alternate((server.url, VLLM_KEY), (gateway_url, key), rounds, tokens))
        finally:
            os.sched_setaffinity(0, affinity)
            server.stop()
    return VllmResult(direct, through, paired, rounds, tokens, server.start_seconds)


def p(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def added_ttft_ms(result: VllmResult) -> float:
    return statistics.median(result.paired_ttft_ms) if result.paired_ttft_ms else float("nan")


def table(result: VllmResult | str) -> str:
    if isinstance(result, str):
        return f"\nReal vLLM: not measured: {result}."
    direct, gateway = result.direct, result.gateway

    def row(label: str, of) -> str:
        ours, theirs = of(gateway), of(direct)
        return f"| {label} | {theirs:.2f} | {ours:.2f} | {ours - theirs:+.2f} |"

    return "\n".join([
        "", f"Real vLLM (CPU, tiny Llama), {result.rounds} streams of {result.tokens} tokens each way, alternating "
        f"(vLLM started in {result.start_s:.0f} s):", "",
        "| | direct | through the gateway | added |", "|---|---:|---:|---:|",
        row("time to first token p50, ms", lambda s: p(s.ttft_ms, 50)),
        row("time to first token p90, ms", lambda s: p(s.ttft_ms, 90)),
        f"| time to first token, median of each round's difference, ms | | | {added_ttft_ms(result):+.2f} |",
        row("gap between tokens mean, ms", lambda s: statistics.fmean(s.gaps_ms) if s.gaps_ms else float("nan")),
        row("gap between tokens p50, ms", lambda s: p(s.gaps_ms, 50)),
        row("gap between tokens p99, ms", lambda s: p(s.gaps_ms, 99)),
        f"| errors | {direct.errors} | {gateway.errors} | |",
    ])
