"""Streaming load: many concurrent SSE streams, timing the first chunk and the gaps between chunks."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

PROMPT = [{"role": "user", "content": "hi"}]


def _body(model: str, tokens: int) -> bytes:
    return json.dumps({"model": model, "messages": PROMPT, "stream": True, "max_tokens": tokens}).encode()


async def _one_stream(session: aiohttp.ClientSession, url: str, headers: dict, body: bytes,
                      ttfc: list[float], gaps: list[float]) -> bool:
    started = time.perf_counter()
    last = None
    async with session.post(url, data=body, headers=headers) as response:
        if response.status != 200:
            await response.read()
            return False
        async for line in response.content:
            if not line.startswith(b"data:") or line.startswith(b"data: [DONE]"):
                continue
            now = time.perf_counter()
            if last is None:
                ttfc.append(now - started)
            else:
                gaps.append(now - last)
            last = now
    return last is not None


async def concurrent_streams(url: str, headers: dict, concurrency: int, duration_s: float, tokens: int,
                             spread_s: float = 0.0) -> dict:
    """`concurrency` streams kept open for `duration_s` (each worker starts a new one when its stream ends).

    With `spread_s`, worker i starts its first stream i/concurrency of `spread_s` late, so that new
    streams keep arriving evenly instead of all at the same instant.
    """
    ttfc: list[float] = []
    gaps: list[float] = []
    errors = 0
    completed = 0
    body = _body("bench", tokens)
    deadline = time.perf_counter() + duration_s
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        async def worker(index: int) -> None:
            nonlocal errors, completed
            await asyncio.sleep(spread_s * index / concurrency)
            while time.perf_counter() < deadline:
                try:
                    ok = await _one_stream(session, url, headers, body, ttfc, gaps)
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                if ok:
                    completed += 1
                else:
                    errors += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return {"ttfc": ttfc, "gaps": gaps, "errors": errors, "streams": completed}


async def hold_streams(url: str, headers: dict, count: int, measure) -> tuple[int, object]:
    """Open `count` slow streams, wait for each one's first chunk, call `measure()`, then close them all."""
    body = _body("bench-idle", 30)
    opened = 0
    all_open = asyncio.Event()
    release = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        async def stream() -> None:
            nonlocal opened
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    if response.status == 200:
                        await response.content.readline()
                        opened += 1
                    if opened == count:
                        all_open.set()
                    await release.wait()
            except (TimeoutError, aiohttp.ClientError):
                pass

        tasks = [asyncio.create_task(stream()) for _ in range(count)]
        try:
            await asyncio.wait_for(all_open.wait(), 30)
        except TimeoutError:
            pass
        result = measure()
        release.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return opened, result
