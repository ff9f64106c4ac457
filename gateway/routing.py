"""Prefix-affinity routing with bounded load: send a request to the replica most likely to hold
its prompt's prefix in vLLM's KV cache, unless that replica is already busier than its share.

vLLM caches the KV of every full block of a prompt under a hash chained over the blocks before it
(vLLM's "Automatic Prefix Caching" design; vllm/v1/core/kv_cache_utils.py: hash_block_tokens), so
a request reuses the longest leading run of blocks an earlier request on the same replica
computed. The gateway has no tokenizer; like the prefix-cache scorer of the Gateway API Inference
Extension (which llm-d's scheduler uses: fixed blocks of tokens approximated by characters,
rolling hash chain, per-server LRU index), it approximates a token by `CHARS_PER_TOKEN` bytes of
the rendered prompt. Only whether two prompts share leading blocks matters here, not where vLLM's
own block boundaries fall.

The choice, for the healthy replicas of a model:
1. A replica whose index holds more of the prompt's leading blocks than its anchor (the text up to
   the end of the first user turn: what all turns of one conversation share, and what tells two
   conversations with one system prompt apart) holds this conversation: an affinity hit.
2. Otherwise rendezvous (highest-random-weight) hashing of the anchor over the replica set: every
   gateway replica picks the same replica, and when a replica joins or leaves only the anchors
   that ranked it first move (Thaler and Ravishankar, "Using name-based mappings to increase hit
   rates", IEEE/ACM ToN 1998). A system prompt shared by many conversations is then computed once
   per replica, while the conversations spread over all of them.
3. Bounded load: in the order of how much of the prompt each replica holds (where this
   conversation ran before, when a turn was moved, comes before a replica that never saw it),
   then of rank, the first replica whose outstanding requests stay within
   ceil(factor x (total + 1) / n) once this one is added ("Consistent Hashing with Bounded
   Loads", Mirrokni, Thorup, Zadimoghaddam, SODA 2018; HAProxy's `hash-balance-factor`). The
   +1 counts the request being placed, and the ceiling keeps one request per replica always
   allowed: with nothing in flight the bound is 1, never 0, so low concurrency does not push every
   request off its replica, and some replica is always within it.

The index is approximate: it records where requests were sent, not what vLLM kept.
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict, deque
from collections.abc import Sequence
from hashlib import blake2b
from itertools import accumulate, repeat
from typing import Protocol

# OpenAI's rule of thumb for English text; the Inference Extension's scorer approximates the same way.
CHARS_PER_TOKEN = 4
# Leading blocks looked at, at most: 8192 tokens with the default 64-token blocks (the Inference
# Extension's default is 256 blocks of 16 tokens, 4096). Beyond them a long conversation is
# already identified, and hashing stays within tens of microseconds (about 0.3-1 us per block here).
MAX_BLOCKS = 128

PREFIX_ROUTES = frozenset(("/v1/chat/completions", "/v1/completions", "/v1/responses"))
# Roles whose messages come before the first user turn and are usually shared between conversations.
_PREAMBLE_ROLES = frozenset(("system", "developer"))

# Decisions, as the metric's `decision` label says them.
AFFINITY = "affinity"
HASH = "hash"
BOUNDED_LOAD = "bounded_load"
LEAST_OUTSTANDING = "least_outstanding"
DECISIONS = (AFFINITY, HASH, BOUNDED_LOAD, LEAST_OUTSTANDING)
# Keeps the anchor's entry in a chain apart from the blocks' (32-bit CRCs).
_ANCHOR_TAG = 1 << 32


class Replica(Protocol):
    url: str
    outstanding: int


class PrefixKey:
    """A prompt's chained block hashes, and the hash of its anchor."""

    __slots__ = ("blocks", "anchor", "anchor_blocks")

    def __init__(self, blocks: list[int], anchor: bytes, anchor_blocks: int):
        # The chained hashes, with the anchor's entry at position anchor_blocks: any entry names
        # everything before it, so a replica holding more than anchor_blocks entries served
        # this very conversation.
        self.blocks = blocks
        self.anchor = anchor  # what rendezvous hashing ranks the replicas by
        self.anchor_blocks = anchor_blocks  # full blocks inside the anchor


def prompt_text(path: str, payload: dict, limit: int) -> tuple[str, int] | None:
    """The prompt as plain text (at most about `limit` characters) and its anchor's length in characters.

    Only what decides the rendered prompt's leading tokens is read: roles and text in message
    order (what chat templates render in that order). Not read: tools, images' bytes beyond their
    URL, sampling parameters. None when the body has no prompt of a known shape.
    """
    if path == "/v1/completions":
        prompt = payload.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        return (prompt[:limit], 0) if isinstance(prompt, str) else None
    if path == "/v1/chat/completions":
        return _messages_text(payload.get("messages"), [], limit)
    if path == "/v1/responses":
        instructions = payload.get("instructions")
        preamble = [f"system\n{instructions}\n"] if isinstance(instructions, str) else []
        items = payload.get("input")
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        return _messages_text(items, preamble, limit)
    return None


def _messages_text(messages: object, parts: list[str], limit: int) -> tuple[str, int] | None:
    if not isinstance(messages, list):
        return None
    size = sum(map(len, parts))
    anchor = 0
    for message in messages:
        if size >= limit:
            break  # the rest cannot reach the hashed blocks: not read
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        text = f"{role}\n{_content_text(message.get('content'))}\n"
        parts.append(text)
        size += len(text)
        if not anchor and role not in _PREAMBLE_ROLES:
            anchor = size
    if not parts:
        return None
    text = "".join(parts)
    return text[:limit], min(anchor or size, limit)


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    pieces = []
    for part in content:
        if not isinstance(part, dict):
            continue
        text = part.get("text")  # chat's "text" parts, the Responses API's input_text / output_text
        if isinstance(text, str):
            pieces.append(text)
            continue
        image = part.get("image_url")  # a different image is a different prompt
        url = image.get("url") if isinstance(image, dict) else image
        if isinstance(url, str):
            pieces.append(url)
    return "\n".join(pieces)


def prefix_key(text: str, anchor_chars: int, block_bytes: int) -> PrefixKey | None:
    """Chained hashes of the text's full blocks; None when it has no full block (vLLM caches only full ones).

    The anchor's own hash goes into the chain right after the anchor's full blocks, so that a
    replica holding only a shared system prompt (another conversation's anchor) matches fewer
    entries than one that served this conversation, even when its first user turn is shorter
    than a block.
    """
    data = text.encode("utf-8", "surrogatepass")
    count = min(len(data) // block_bytes, MAX_BLOCKS)
    if not count:
        return None
    anchor = text[:anchor_chars].encode("utf-8", "surrogatepass") if anchor_chars else data[:block_bytes]
    anchor_blocks = min(len(anchor) // block_bytes, count)
    # CRC-32 continued over each block is the CRC of the whole prefix up to it: a chained hash
    # computed in C, one call per block (a cryptographic hash per block costs several times more).
    pieces = [data[start:start + block_bytes] for start in range(0, count * block_bytes, block_bytes)]
    blocks = list(accumulate(pieces, _continue_crc, initial=0))[1:]
    anchor_hash = zlib.crc32(anchor)
    blocks.insert(anchor_blocks, anchor_hash | _ANCHOR_TAG)
    return PrefixKey(blocks, anchor_hash.to_bytes(4, "big") + len(anchor).to_bytes(4, "big"), anchor_blocks)


def _continue_crc(crc: int, piece: bytes) -> int:
    return zlib.crc32(piece, crc)


class PrefixIndex:
    """The block hashes recently routed to one replica, least recently used forgotten first."""

    __slots__ = ("capacity", "_blocks")

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def matched(self, blocks: Sequence[int]) -> int:
        """How many of the leading blocks the replica holds, by binary search.

        record() keeps a prefix's shorter parts more recent than its longer ones, so eviction
        takes a prompt's tail first and what is held is always a leading run.
        """
        held = self._blocks
        low, high = 0, len(blocks)
        while low < high:
            middle = (low + high + 1) // 2
            if blocks[middle - 1] in held:
                low = middle
            else:
                high = middle - 1
        return low

    def record(self, blocks: Sequence[int]) -> None:
        held = self._blocks
        # Taken out and put back tail first, so the leading blocks are the most recent: vLLM frees
        # a request's blocks in reverse order for the same reason (vllm/v1/core/kv_cache_manager.py:
        # free). map() and update() keep the per-block loop in C.
        deque(map(held.pop, blocks, repeat(None, len(blocks))), maxlen=0)
        held.update(dict.fromkeys(reversed(blocks)))
        while len(held) > self.capacity:
            held.popitem(last=False)


def within_bound(outstanding: int, total: int, replicas: int, factor: float) -> bool:
    """Whether one more request keeps the replica within ceil(factor x (total + 1) / replicas)."""
    return outstanding + 1 <= math.ceil(factor * (total + 1) / replicas)


def rendezvous_weight(anchor: bytes, url: bytes) -> int:
    return int.from_bytes(blake2b(url + b"\0" + anchor, digest_size=8).digest(), "big")


class PrefixRouter:
    """The prefix-affinity choice for one model's replicas, with one index per replica URL."""

    def __init__(self, load_factor: float, index_blocks: int):
        self.load_factor = load_factor
        self.index_blocks = index_blocks
        self.indexes: dict[str, PrefixIndex] = {}
        self._url_keys: dict[str, bytes] = {}

    def forget_except(self, urls: set[str]) -> None:
        """Drop the indexes of replicas no longer in the set (a DNS refresh removed them)."""
        for url in [url for url in self.indexes if url not in urls]:
            del self.indexes[url]
            self._url_keys.pop(url, None)

    def choose(self, candidates: Sequence[Replica], key: PrefixKey) -> tuple[Replica, str]:
        """The replica for a request and why; `candidates` are the healthy ones not yet tried."""
        ranked = sorted(candidates, key=lambda r: self._weight(key.anchor, r.url), reverse=True)
        indexes = self.indexes
        # How much of this prompt each replica holds beyond the anchor (0 for none of it).
        held = []
        for replica in ranked:
            index = indexes.get(replica.url)
            held.append(max(index.matched(key.blocks) - key.anchor_blocks, 0) if index is not None else 0)
        # Most held first; among equals, rank order. The fallbacks of a busy replica are then the
        # replicas where this conversation ran before (a turn moved by bounded load) before the others.
        order = sorted(range(len(ranked)), key=lambda i: -held[i])  # stable: rank order among equals
        preferred = [ranked[i] for i in order]
        best, best_held = preferred[0], held[order[0]]
        total = sum(r.outstanding for r in candidates)
        chosen = next((r for r in preferred if within_bound(r.outstanding, total, len(candidates), self.load_factor)),
                      None)
        if chosen is None:  # unreachable for factor >= 1 (the least loaded is always within); kept total
            chosen = min(candidates, key=lambda r: r.outstanding)
        if chosen is not best:
            decision = BOUNDED_LOAD
        else:
            decision = AFFINITY if best_held else HASH
        index = indexes.get(chosen.url)
        if index is None:
            index = indexes[chosen.url] = PrefixIndex(self.index_blocks)
        index.record(key.blocks)
        return chosen, decision

    def _weight(self, anchor: bytes, url: str) -> int:
        url_key = self._url_keys.get(url)
        if url_key is None:
            url_key = self._url_keys[url] = url.encode("utf-8")
        return rendezvous_weight(anchor, url_key)
