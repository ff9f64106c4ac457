"""Prefix-affinity routing (gateway/routing.py): the prompt's key, the choice, bounded load,
replica sets that change, health; without sockets."""

from __future__ import annotations

import random
from dataclasses import dataclass

from gateway import routing
from gateway.config import HealthSettings, ModelSettings
from gateway.metrics import Metrics
from gateway.routing import PrefixIndex, PrefixRouter, prefix_key, prompt_text, within_bound
from gateway.upstreams import UpstreamPool
from tests.gateway import harness

BLOCK = 16 * routing.CHARS_PER_TOKEN
LIMIT = BLOCK * routing.MAX_BLOCKS
SYSTEM = "You are a careful assistant for the llm-edge test suite. " * 20  # about 18 blocks


@dataclass(eq=False)
class Replica:
    url: str
    outstanding: int = 0


def replicas(count: int) -> list[Replica]:
    return [Replica(f"http://10.0.0.{i}:8000") for i in range(1, count + 1)]


def chat_key(messages: list[dict]):
    text, anchor = prompt_text("/v1/chat/completions", {"messages": messages}, LIMIT)
    return prefix_key(text, anchor, BLOCK)


def conversation(seed: int, turns: int, system: str = SYSTEM) -> list[list[dict]]:
    return harness.conversation(seed, turns, system)


# --- the key -----------------------------------------------------------------------------------

def test_a_later_turn_extends_the_earlier_turns_chain():
    first, second, third = (chat_key(messages) for messages in conversation(1, 3))
    assert second.blocks[:len(first.blocks)] == first.blocks
    assert third.blocks[:len(second.blocks)] == second.blocks
    assert first.anchor == second.anchor == third.anchor


def test_a_shared_system_prompt_shares_blocks_but_not_the_anchor():
    mine, theirs = chat_key(conversation(1, 1)[0]), chat_key(conversation(2, 1)[0])
    system_blocks = len(SYSTEM) // BLOCK
    assert mine.blocks[:system_blocks] == theirs.blocks[:system_blocks]
    assert mine.anchor != theirs.anchor
    # The anchor's own entry keeps them apart right after the anchor's blocks.
    assert mine.blocks[mine.anchor_blocks] != theirs.blocks[theirs.anchor_blocks]


def test_text_parts_render_like_a_string_and_responses_input_like_chat():
    as_string = chat_key([{"role": "user", "content": "tell me " * 40}])
    as_parts = chat_key([{"role": "user", "content": [{"type": "text", "text": "tell me " * 40}]}])
    assert as_string.blocks == as_parts.blocks
    text, anchor = prompt_text("/v1/responses", {"input": "tell me " * 40}, LIMIT)
    assert prefix_key(text, anchor, BLOCK).blocks == as_string.blocks
    instructions, _ = prompt_text("/v1/responses", {"instructions": "be brief", "input": "x"}, LIMIT)
    assert instructions.startswith("system\nbe brief\n")


def test_no_key_without_a_full_block_or_a_prompt():
    assert chat_key([{"role": "user", "content": "hi"}]) is None
    assert prompt_text("/v1/completions", {"prompt": [1, 2, 3]}, LIMIT) is None
    assert prompt_text("/v1/chat/completions", {"messages": "not a list"}, LIMIT) is None
    assert prompt_text("/v1/embeddings", {"input": "x" * 1000}, LIMIT) is None


def test_only_the_leading_blocks_are_hashed():
    long_prompt = "word " * (LIMIT // 2)
    text, anchor = prompt_text("/v1/completions", {"prompt": long_prompt}, LIMIT)
    assert len(text) == LIMIT
    key = prefix_key(text, anchor, BLOCK)
    assert len(key.blocks) == routing.MAX_BLOCKS + 1  # and the anchor's entry
    # Messages past the limit are not read at all.
    many = [{"role": "user", "content": "x" * LIMIT}] + [{"role": "assistant", "content": object()}] * 3
    assert len(prompt_text("/v1/chat/completions", {"messages": many}, LIMIT)[0]) == LIMIT


# --- the index ---------------------------------------------------------------------------------

def test_index_forgets_least_recently_used_tails_first():
    index = PrefixIndex(capacity=10)
    old = chat_key([{"role": "user", "content": "first " * 80}]).blocks[:8]
    index.record(old)
    assert index.matched(old) == 8
    index.record(chat_key([{"role": "user", "content": "second " * 80}]).blocks[:4])
    assert len(index) == 10
    # Two entries had to go: the old prompt's last two, so what is left is still its leading run.
    assert index.matched(old) == 6


# --- the choice --------------------------------------------------------------------------------

def test_every_turn_of_a_conversation_goes_to_one_replica():
    router = PrefixRouter(load_factor=1.25, index_blocks=10_000)
    pool = replicas(3)
    served: dict[int, set[str]] = {}
    for turn in range(4):
        for seed in range(30):
            chosen, _ = router.choose(pool, chat_key(conversation(seed, turn + 1)[turn]))
            served.setdefault(seed, set()).add(chosen.url)
    assert all(len(urls) == 1 for urls in served.values()), served
    # ...and the conversations, which share one system prompt, spread over every replica.
    owners = [next(iter(urls)) for urls in served.values()]
    assert {owners.count(r.url) for r in pool} <= set(range(5, 16)), owners


def test_gateway_replicas_agree_without_sharing_anything():
    one, other = PrefixRouter(1.25, 1000), PrefixRouter(1.25, 1000)
    pool = replicas(4)
    for seed in range(20):
        key = chat_key(conversation(seed, 1)[0])
        assert one.choose(pool, key)[0] is other.choose(list(reversed(pool)), key)[0]


def test_decisions_name_hash_then_affinity():
    router = PrefixRouter(1.25, 1000)
    pool = replicas(2)
    turns = conversation(7, 2)
    first, first_decision = router.choose(pool, chat_key(turns[0]))
    second, second_decision = router.choose(pool, chat_key(turns[1]))
    assert (first_decision, second_decision) == (routing.HASH, routing.AFFINITY) and first is second


def test_a_busy_replica_is_passed_over_and_the_conversation_follows():
    router = PrefixRouter(1.25, 1000)
    pool = replicas(2)
    turns = conversation(3, 3)
    home, _ = router.choose(pool, chat_key(turns[0]))
    away = next(r for r in pool if r is not home)
    home.outstanding = 4  # bound with 4 in flight over 2: ceil(1.25 * 5 / 2) = 4; home would be at 5
    moved, decision = router.choose(pool, chat_key(turns[1]))
    assert moved is away and decision == routing.BOUNDED_LOAD
    home.outstanding = 0
    # The next turn goes where the longer history is now, not back to the hash's choice.
    assert router.choose(pool, chat_key(turns[2])) == (away, routing.AFFINITY)


def test_a_busy_replicas_fallback_is_where_the_conversation_ran_before():
    router = PrefixRouter(1.25, 1000)
    pool = replicas(3)
    turns = conversation(4, 3)
    first, second, third = sorted(pool, key=lambda r: routing.rendezvous_weight(chat_key(turns[0]).anchor,
                                                                                r.url.encode()), reverse=True)
    # With 8 in flight over 3 the bound is ceil(1.25 * 9 / 3) = 4: a replica at 4 is passed over.
    first.outstanding = second.outstanding = 4
    assert router.choose(pool, chat_key(turns[0]))[0] is third
    first.outstanding, second.outstanding, third.outstanding = 0, 4, 4
    assert router.choose(pool, chat_key(turns[1]))[0] is first  # now holds the longest history
    first.outstanding, second.outstanding, third.outstanding = 4, 0, 0
    # `first` is over the bound (3): `third` holds the first turn, `second` none of it, though it ranks higher.
    assert router.choose(pool, chat_key(turns[2])) == (third, routing.BOUNDED_LOAD)


def test_bound_allows_some_imbalance_and_no_more():
    router = PrefixRouter(1.25, 1000)
    pool = replicas(2)
    key = chat_key(conversation(5, 1)[0])
    home, _ = router.choose(pool, key)
    away = next(r for r in pool if r is not home)
    home.outstanding, away.outstanding = 3, 1  # ceil(1.25 * 5 / 2) = 4: home may take a fourth
    assert router.choose(pool, key) == (home, routing.AFFINITY)
    home.outstanding = 4  # ceil(1.25 * 6 / 2) = 4: a fifth is too many
    assert router.choose(pool, key)[1] == routing.BOUNDED_LOAD


def test_low_concurrency_never_leaves_the_preferred_replica():
    # Without the +1 and the ceiling, factor x mean is 0 with nothing in flight and 0.625 with one.
    assert within_bound(0, 0, 2, 1.25)
    assert within_bound(1, 1, 2, 1.25)
    assert not within_bound(2, 2, 2, 1.25)


def test_someone_is_always_within_the_bound():
    rng = random.Random(18)
    for _ in range(2000):
        loads = [rng.randrange(20) for _ in range(rng.randrange(1, 9))]
        factor = rng.choice((1.0, 1.1, 1.25, 2.0))
        assert within_bound(min(loads), sum(loads), len(loads), factor), (loads, factor)


def test_one_hot_prefix_is_spread_by_the_bound():
    router = PrefixRouter(1.25, 1000)
    pool = replicas(3)
    key = chat_key(conversation(9, 1)[0])
    for _ in range(12):  # twelve identical requests in flight at once
        router.choose(pool, key)[0].outstanding += 1
    # The preferred replica fills to ceil(1.25 * 12 / 3) = 5, the next in rank too, the third takes the rest.
    assert sorted(r.outstanding for r in pool) == [2, 5, 5]


def test_a_new_replica_takes_only_its_share_of_new_prefixes():
    keys = [chat_key(conversation(seed, 1)[0]) for seed in range(600)]
    before = replicas(4)
    after = [*before, Replica("http://10.0.0.9:8000")]

    def owners(pool: list[Replica]) -> list[str]:
        return [PrefixRouter(1.25, 10).choose(pool, key)[0].url for key in keys]  # fresh index: the hash alone

    old, new = owners(before), owners(after)
    moved = [i for i in range(len(keys)) if old[i] != new[i]]
    assert all(new[i] == "http://10.0.0.9:8000" for i in moved)
    assert 0.12 <= len(moved) / len(keys) <= 0.28  # 1/5 expected
    # A replica leaving moves only the prefixes it had.
    fewer = owners(before[1:])
    assert all(fewer[i] == old[i] for i in range(len(keys)) if old[i] != before[0].url)


def test_known_conversations_stay_when_a_replica_joins():
    router = PrefixRouter(1.25, 10_000)
    pool = replicas(2)
    homes = {seed: router.choose(pool, chat_key(conversation(seed, 1)[0]))[0] for seed in range(40)}
    pool.append(Replica("http://10.0.0.9:8000"))
    for seed, home in homes.items():
        assert router.choose(pool, chat_key(conversation(seed, 2)[1]))[0] is home


# --- in the pool: health and least outstanding ------------------------------------------------

def pool_of(count: int, routing_mode: str = "prefix_affinity") -> tuple[UpstreamPool, Metrics]:
    metrics = Metrics()
    settings = ModelSettings(upstreams=[f"http://10.0.0.{i}:8000" for i in range(1, count + 1)], routing=routing_mode)
    return UpstreamPool("m", settings, HealthSettings(failures=1, cooldown_s=60), metrics), metrics


def test_a_cooling_down_replica_is_never_chosen():
    pool, metrics = pool_of(3)
    turns = conversation(11, 2)
    home = pool.pick(set(), pool.prefix_key("/v1/chat/completions", {"messages": turns[0]}))
    pool.record_failure(home)
    for seed in range(30):
        key = pool.prefix_key("/v1/chat/completions", {"messages": conversation(seed, 2)[1]})
        assert pool.pick(set(), key) is not home
    assert metrics.registry.get_sample_value("gateway_routing_decisions_total", {"model": "m", "decision": "hash"}) >= 1


def test_embeddings_least_outstanding_models_and_single_addresses_have_no_key():
    pool, _ = pool_of(2)
    assert pool.prefix_key("/v1/embeddings", {"input": SYSTEM}) is None
    plain, _ = pool_of(2, "least_outstanding")
    assert plain.prefix_key("/v1/chat/completions", {"messages": conversation(1, 1)[0]}) is None
    alone, _ = pool_of(1)  # nothing to choose: not hashed
    assert alone.prefix_key("/v1/chat/completions", {"messages": conversation(1, 1)[0]}) is None
    assert pool.prefix_key("/v1/chat/completions", {"messages": conversation(1, 1)[0]}) is not None
