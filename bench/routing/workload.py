"""The routing benchmark's workload: multi-turn conversations and requests sharing long system prompts.

Every arm replays the same requests (fixed seeds). A worker plays one conversation at a time, turn
after turn, each turn resending the whole history with the replies it got, as a chat client does;
`concurrency` workers run at once. Each request streams, so the time to its first event is the
time to first token (vLLM sends its first event with the first token).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

import httpx

# Words the benchmark model's tokenizer holds whole (tests/vllm/tiny_model.py: corpus), one
# token each, so prompt lengths in tokens are known.
WORDS = ("the quick brown fox jumps over the lazy dog hello world model token stream usage request response "
         "gateway proxy api key chat completion system user assistant embedding rerank score llama prefix cache "
         "block tiny random weights cpu server health zero one two three four five").split()
MAX_TOKENS = 16


@dataclass
class Workload:
    system_prompts: int = 4  # distinct long system prompts, each shared by many conversations
    system_tokens: int = 300
    conversations: int = 24  # multi-turn: 4 to 6 turns each
    single_requests: int = 12  # one turn each, a shared system prompt and a short question of its own
    user_tokens: int = 80

    def scripts(self) -> list[list[tuple[str, str]]]:
        """Per conversation: (system prompt, user message) of each of its turns; replies come at run time."""
        rng = random.Random(18)
        systems = [_words(rng, self.system_tokens) for _ in range(self.system_prompts)]
        scripts = []
        for index in range(self.conversations):
            system = systems[index % len(systems)]
            turns = 4 + index % 3
            scripts.append([(system, f"conversation {index} turn {turn} " + _words(rng, self.user_tokens))
                            for turn in range(turns)])
        for index in range(self.single_requests):
            system = systems[index % len(systems)]
            scripts.append([(system, f"request {index} " + _words(rng, self.user_tokens // 2))])
        rng.shuffle(scripts)
        return scripts


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(count))


@dataclass
class Result:
    ttft_s: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    failures: int = 0
    bodies: list[dict] = field(default_factory=list)  # every request body sent, for the routing-cost replay


async def run(base_url: str, key: str, model: str, scripts: list[list[tuple[str, str]]], concurrency: int) -> Result:
    result = Result()
    queue: asyncio.Queue[list[tuple[str, str]]] = asyncio.Queue()
    for script in scripts:
        queue.put_nowait(script)
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300, limits=limits) as client:
        async def worker() -> None:
            while not queue.empty():
                script = queue.get_nowait()
                messages = [{"role": "system", "content": script[0][0]}]
                for _, user in script:
                    messages.append({"role": "user", "content": user})
                    body = {"model": model, "messages": messages, "max_tokens": MAX_TOKENS, "stream": True,
                            "ignore_eos": True, "temperature": 0}
                    result.bodies.append(json.loads(json.dumps(body)))
                    reply = await _stream(client, body, result)
                    messages.append({"role": "assistant", "content": reply})

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.duration_s = time.monotonic() - started
    return result


async def _stream(client: httpx.AsyncClient, body: dict, result: Result) -> str:
    started = time.monotonic()
    first = None
    text = []
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as reply:
            if reply.status_code != 200:
                result.failures += 1
                await reply.aread()
                return ""
            async for line in reply.aiter_lines():
                if not line.startswith("data:") or line == "data: [DONE]":
                    continue
                if first is None:
                    first = time.monotonic() - started
                for choice in json.loads(line[5:]).get("choices", ()):
                    text.append(choice.get("delta", {}).get("content") or "")
    except httpx.HTTPError:
        result.failures += 1
        return ""
    if first is not None:
        result.ttft_s.append(first)
    return "".join(text)
