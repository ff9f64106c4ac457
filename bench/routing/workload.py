"""The routing benchmark's workload: multi-turn conversations and requests sharing long system prompts.

Every arm replays the same requests (fixed seeds). Each turn resends the whole history with the
replies it got, as a chat client does; `concurrency` requests run at once (run() says in what
order). Each request streams, so the time to its first event is the
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
    conversations: int = 24
    turns: tuple[int, int] = (4, 6)  # fewest and most turns of a conversation
    context_tokens: int = 0  # a document of its own in each conversation's first turn (RAG, an agent's tool output)
    single_requests: int = 12  # one turn each, a shared system prompt and a short question of its own
    user_tokens: int = 80

    def scripts(self) -> list[list[tuple[str, str]]]:
        """Per conversation: (system prompt, user message) of each of its turns; replies come at run time."""
        rng = random.Random(18)
        systems = [_words(rng, self.system_tokens) for _ in range(self.system_prompts)]
        scripts = []
        low, high = self.turns
        for index in range(self.conversations):
            system = systems[index % len(systems)]
            document = _words(rng, self.context_tokens) + " " if self.context_tokens else ""
            scripts.append([(system, f"conversation {index} turn {turn} " + (document if turn == 0 else "")
                             + _words(rng, self.user_tokens))
                            for turn in range(low + index % (high - low + 1))])
        for index in range(self.single_requests):
            system = systems[index % len(systems)]
            scripts.append([(system, f"request {index} " + _words(rng, self.user_tokens // 2))])
        rng.shuffle(scripts)
        return scripts


# chat: long conversations after a few shared system prompts; every replica soon holds the system
# prompts, so least outstanding loses only the turns a replica has not seen.
# documents: each conversation opens with a document of its own (retrieval, a file, a tool's
# output), then asks follow-ups: least outstanding recomputes the document wherever a follow-up lands.
# uniform: every conversation alike (4 turns) and none sharing a prefix (a system prompt each), so
# no prefix is hotter than another: the workload of the share target (no replica above
# 1.25x the mean share), where an uneven share can only come from the router.
PROFILES = {
    "chat": Workload(),
    "documents": Workload(turns=(2, 4), context_tokens=600, user_tokens=60),
    "uniform": Workload(system_prompts=24, turns=(4, 4), single_requests=0),
}
# What `--profile both` runs: the two profiles of the hit-ratio targets.
HIT_RATIO_PROFILES = ("chat", "documents")


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(count))


@dataclass
class Result:
    ttft_s: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    failures: int = 0
    bodies: list[dict] = field(default_factory=list)  # every request body sent, for the routing-cost replay


async def run(base_url: str, key: str, model: str, scripts: list[list[tuple[str, str]]], concurrency: int) -> Result:
    """Every conversation is open from the start; `concurrency` workers take the next request from one
    queue, and a conversation's next turn joins the back of it once its reply is in.

    A user reads and types between turns, so the next turn of a conversation reaches the gateway at
    a moment unrelated to where its last turn ran. A closed loop that sent it the moment the reply
    ended would not be that: it would arrive just as its own replica freed a slot, and least
    outstanding would pick that replica again by accident (measured: 63% hit ratio for it, as for
    prefix affinity, on the documents profile with 2 replicas).
    """
    result = Result()
    queue: asyncio.Queue[tuple[list[tuple[str, str]], list[dict]] | None] = asyncio.Queue()
    for script in scripts:
        queue.put_nowait((script, [{"role": "system", "content": script[0][0]}]))
    open_conversations = len(scripts)
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300, limits=limits) as client:
        async def worker() -> None:
            nonlocal open_conversations
            while (item := await queue.get()) is not None:
                script, messages = item
                messages.append({"role": "user", "content": script[len(messages) // 2][1]})
                body = {"model": model, "messages": messages, "max_tokens": MAX_TOKENS, "stream": True,
                        "ignore_eos": True, "temperature": 0}
                result.bodies.append(json.loads(json.dumps(body)))
                messages.append({"role": "assistant", "content": await _stream(client, body, result)})
                if len(messages) // 2 < len(script):
                    queue.put_nowait((script, messages))
                else:
                    open_conversations -= 1
                    if not open_conversations:
                        for _ in range(concurrency):
                            queue.put_nowait(None)

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
