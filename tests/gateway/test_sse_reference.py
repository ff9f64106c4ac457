"""The SSE relay against a reference, on generated vLLM streams: what the client receives is what
vLLM sends for the client's own request, and the tokens counted are vLLM's.

The upstream stream is the one vLLM 0.32 sends when asked for `include_usage` and
`continuous_usage_stats`, as the gateway asks every stream (gateway/sse.py): cumulative usage on
every chunk, a final `"choices": []` chunk with the totals and the fingerprint. Generated: chat
or completions, one or several choices interleaved, any content (quotes, escapes, text that looks
like the members being looked for), vLLM's compact JSON or spaced JSON, reads of one event (as
vLLM writes them), of several, or cut anywhere, and streams cut after any read. The reference is computed from
the decoded events, independently of how the relay scans bytes: its quick path (one choice,
compact JSON) and its general path must both agree with it.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.metrics import Outcome
from gateway.sse import SseRelay
from gateway.stream_request import StreamPlan
from tests.gateway.test_sse import Transport

FINGERPRINT = "vllm-0.32.0-25c87036"
TEXT = st.one_of(st.text(max_size=12), st.sampled_from([
    '"finish_reason":null}],"usage":{"prompt_tokens":1,"total_tokens":2,"completion_tokens":1}}',
    "data: [DONE]", '\n\ndata: {"choices":[]}', "\\", '"', "}]", '"usage":{', "é€😀"]))


def _dumps(obj: dict, compact: bool) -> bytes:
    return json.dumps(obj, separators=(",", ":") if compact else None).encode()


@st.composite
def streams(draw):
    chat = draw(st.booleans())
    prompts = 1 if chat else draw(st.integers(1, 2))
    n = draw(st.integers(1, 2))
    prompt_tokens = [draw(st.integers(1, 5000)) for _ in range(prompts)]
    choices = prompts * n
    lengths = [draw(st.integers(0, 6)) for _ in range(choices)]
    # The order the choices' chunks come in: each choice's own chunks stay in order.
    order = draw(st.permutations([c for c in range(choices) for _ in range(lengths[c] + (2 if chat else 1))]))
    events, sent = [], [0] * choices
    role_sent = [False] * choices
    for index in order:
        prompt = prompt_tokens[index // n]
        if chat and not role_sent[index]:
            role_sent[index] = True
            choice = {"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                      "finish_reason": None}
            extra = {"prompt_token_ids": None, "prompt_text": None}
        else:
            finishing = sent[index] == lengths[index]
            text = draw(TEXT)
            choice = {"index": index, **({"delta": {"content": text}} if chat else {"text": text}), "logprobs": None,
                      "finish_reason": draw(st.sampled_from(["length", "stop"])) if finishing else None}
            if finishing:
                choice["stop_reason"] = None
            choice["token_ids"] = None
            sent[index] += 1
            extra = {}
        usage = {"prompt_tokens": prompt, "total_tokens": prompt + sent[index], "completion_tokens": sent[index]}
        if draw(st.booleans()):
            usage["completion_tokens_details"] = None
        events.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [choice], "usage": usage, **extra})
    totals = {"prompt_tokens": sum(prompt_tokens), "total_tokens": sum(prompt_tokens) + sum(sent),
              "completion_tokens": sum(sent)}
    events.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [], "usage": totals, "system_fingerprint": FINGERPRINT})
    compact = draw(st.booleans())
    raw = [b"data: " + _dumps(event, compact) + b"\n\n" for event in events] + [b"data: [DONE]\n\n"]
    return {"events": events, "raw": raw, "n": n, "prompts": prompts, "one_choice": choices == 1}


def what_vllm_sends(events: list[dict], usage_chunk: bool, chunk_usage: bool) -> list[dict]:
    """The events vLLM sends for the client's own stream_options (V/entrypoints/openai/chat_completion/serving.py)."""
    out = []
    for event in events:
        event = dict(event)
        final = not event["choices"]
        if final and not usage_chunk:
            continue
        if not final and not chunk_usage:
            del event["usage"]
        if not usage_chunk and not final and event["choices"][0]["finish_reason"] is not None:
            event["system_fingerprint"] = FINGERPRINT  # without usage it rides on the finish chunks
        out.append(event)
    return out


def tokens_of(events: list[dict], n: int) -> tuple[int, int]:
    """vLLM's count of what these events carry: the final totals, else the last usage of each choice."""
    prompts, completions = {}, {}
    for event in events:
        if not event["choices"]:
            return event["usage"]["prompt_tokens"], event["usage"]["completion_tokens"]
        index = event["choices"][0]["index"]
        prompts[index // n] = event["usage"]["prompt_tokens"]
        completions[index] = event["usage"]["completion_tokens"]
    return sum(prompts.values()), sum(completions.values())


def dechunk(written: bytes) -> list[dict]:
    """The JSON events of an HTTP/1.1 chunked body (the relay's framing)."""
    body, at = b"", 0
    while at < len(written):
        line_end = written.index(b"\r\n", at)
        size = int(written[at:line_end], 16)
        body += written[line_end + 2:line_end + 2 + size]
        assert written[line_end + 2 + size:line_end + 4 + size] == b"\r\n"
        at = line_end + 4 + size
    events = [event for event in body.split(b"\n\n") if event]
    assert events[-1] == b"data: [DONE]"
    return [json.loads(event[len(b"data: "):]) for event in events[:-1]]


@st.composite
def reads(draw, raw: list[bytes]) -> list[bytes]:
    """How the relay receives the events: mostly one read per event, as vLLM writes them, with
    some reads holding several events, and some cut anywhere."""
    data = b"".join(raw)
    ends = [0]
    for event in raw:
        ends.append(ends[-1] + len(event))
    cuts = set(ends[1:-1]) - set(draw(st.lists(st.sampled_from(ends[1:-1]), max_size=4))) if len(raw) > 1 else set()
    cuts |= set(draw(st.lists(st.integers(1, len(data) - 1), max_size=3)))
    edges = [0, *sorted(cuts), len(data)]
    return [data[start:stop] for start, stop in zip(edges, edges[1:], strict=False)]


def run(stream: dict, pieces: list[bytes], usage_chunk: bool, chunk_usage: bool, stop_after: int | None):
    transport, outcome = Transport(), Outcome()
    plan = StreamPlan(b"", usage_chunk=usage_chunk, chunk_usage=chunk_usage, choices_per_prompt=stream["n"],
                      one_choice=stream["one_choice"])
    relay = SseRelay(transport, writer=None, plan=plan, outcome=outcome, on_first_chunk=lambda: None)
    fed = pieces if stop_after is None else pieces[:stop_after]
    for piece in fed:
        relay.feed(piece)
    if stop_after is None:
        relay.finish()
    relay.settle()  # what the proxy does once a relay is over, ended or cut
    return transport.written, outcome, b"".join(fed)


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(streams(), st.booleans(), st.booleans(), st.data())
def test_a_whole_stream_is_vllms_own_and_counted_as_vllm_counts(stream, usage_chunk, chunk_usage, data):
    chunk_usage = chunk_usage and usage_chunk  # vLLM ignores continuous_usage_stats without include_usage
    written, outcome, _ = run(stream, data.draw(reads(stream["raw"])), usage_chunk, chunk_usage, stop_after=None)
    assert dechunk(written) == what_vllm_sends(stream["events"], usage_chunk, chunk_usage)
    assert (outcome.prompt_tokens, outcome.completion_tokens) == tokens_of(stream["events"], stream["n"])


@SETTINGS
@given(streams(), st.booleans(), st.data())
def test_a_cut_stream_is_charged_what_its_whole_events_carried(stream, usage_chunk, data):
    pieces = data.draw(reads(stream["raw"]))
    stop_after = data.draw(st.integers(0, len(pieces)))
    written, outcome, fed = run(stream, pieces, usage_chunk, False, stop_after)
    whole = fed.count(b"\n\n")  # the events whose end came: only those are read
    parsed = stream["events"][:whole]
    assert (outcome.prompt_tokens, outcome.completion_tokens) == tokens_of(parsed, stream["n"])
    assert b'"usage"' not in written or usage_chunk
