"""The SSE relay on its own: which events mark a stream as answered, and the usage chunk."""

from __future__ import annotations

import json
import time

import pytest

from gateway.metrics import CLIENT_CLOSED, Outcome
from gateway.sse import MAX_EVENT_BYTES, SseRelay
from gateway.stream_request import StreamPlan
from gateway.upstream_client import UpstreamBroken


class Transport:
    """What the relay uses of an asyncio transport; records the bytes written."""

    def __init__(self) -> None:
        self.written = b""
        self.closing = False

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return 16384, 65536

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        self.written += data


def event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def relay(client_wants_usage: bool = False, **plan) -> tuple[SseRelay, Transport, Outcome]:
    transport, outcome = Transport(), Outcome()
    outcome.status = 200
    plan.setdefault("one_choice", plan.get("choices_per_prompt", 1) == 1)
    stream = StreamPlan(b"", usage_chunk=client_wants_usage, chunk_usage=client_wants_usage, **plan)
    sse = SseRelay(transport, writer=None, plan=stream, outcome=outcome, on_first_chunk=lambda: None)
    return sse, transport, outcome


def token(text: str) -> bytes:
    return event({"choices": [{"index": 0, "delta": {"content": text}}]})


def test_client_leaving_after_done_keeps_the_200():
    sse, _, outcome = relay()
    sse.feed(token("hi"))
    assert not outcome.answered
    sse.feed(b"data: [DONE]\n\n")
    outcome.client_left()
    assert outcome.status == 200


def test_a_token_reading_done_does_not_answer_the_stream():
    sse, transport, outcome = relay()
    sse.feed(token("data: [DONE]") + token("\ndata: [DONE]"))
    assert b"[DONE]" in transport.written
    outcome.client_left()
    assert outcome.status == CLIENT_CLOSED


def test_done_without_the_space_and_after_other_events_in_one_read():
    sse, _, outcome = relay()
    sse.feed(token("bye") + b"data:[DONE]\r\n\r\n")
    assert outcome.answered


def test_done_not_written_because_the_client_had_gone_is_not_an_answer():
    sse, transport, outcome = relay()
    transport.closing = True
    sse.feed(b"data: [DONE]\n\n")
    outcome.client_left()
    assert outcome.status == CLIENT_CLOSED


def test_usage_chunk_is_counted_and_dropped_when_the_client_did_not_ask():
    usage = event({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})
    for wants, kept in ((False, False), (True, True)):
        sse, transport, outcome = relay(client_wants_usage=wants)
        sse.feed(token("a") + usage + b"data: [DONE]\n\n")
        assert (outcome.prompt_tokens, outcome.completion_tokens) == (5, 3)
        assert (b'"usage"' in transport.written) is kept


def test_long_event_arriving_in_small_pieces_costs_linear_time():
    sse, transport, _ = relay()
    long_event = b"data: " + b"x" * (900 * 1024) + b"\n\n"
    started = time.process_time()
    for start in range(0, len(long_event), 64):  # 14,400 pieces: re-joining each time would copy gigabytes
        sse.feed(long_event[start:start + 64])
    assert time.process_time() - started < 2.0
    assert transport.written == b"%x\r\n%b\r\n" % (len(long_event), long_event)


def test_event_larger_than_the_maximum_breaks_the_stream():
    sse, transport, _ = relay()
    piece = b"x" * 65536
    with pytest.raises(UpstreamBroken, match="larger than"):
        for _ in range(MAX_EVENT_BYTES // len(piece) + 2):
            sse.feed(piece)
    assert transport.written == b""


def chunk(index: int, completion: int, prompt: int = 9, finish: str | None = None, compact: bool = True) -> bytes:
    """A vLLM chunk with continuous usage (cumulative: the prompt and this choice's tokens so far)."""
    obj = {"id": "c", "choices": [{"index": index, "delta": {"content": "x"}, "finish_reason": finish}],
           "usage": {"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion}}
    return b"data: " + json.dumps(obj, separators=(",", ":") if compact else None).encode() + b"\n\n"


@pytest.mark.parametrize("compact", [True, False])
def test_cumulative_usage_counts_the_last_per_choice_and_prompt(compact):
    # Completions with two prompts and n=2: choice i answers prompt i // 2 (vLLM completion/serving.py:329).
    sse, transport, outcome = relay(choices_per_prompt=2)
    sse.feed(chunk(0, 1, 4, compact=compact) + chunk(1, 1, 4, compact=compact))  # two events in one read
    sse.feed(chunk(2, 1, 6, compact=compact))
    sse.feed(chunk(0, 2, 4, compact=compact) + chunk(3, 3, 6, compact=compact))
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (4 + 6, 2 + 1 + 1 + 3)
    assert b"usage" not in transport.written, "the client asked for none"
    sse.feed(event({"id": "c", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 20}}))
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (10, 20), "the final usage replaces the count"


def test_crlf_events_and_a_usage_member_first_are_taken_out_too():
    sse, transport, outcome = relay()
    sse.feed(b'data: {"usage": {"prompt_tokens": 3, "completion_tokens": 1}, "choices": [{"index": 0}]}\r\n\r\n'
             b'data: {"choices":[{"index":0}],"usage":{"prompt_tokens":3,"completion_tokens":2}}\r\n\r\n')
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (3, 2)
    assert transport.written.count(b"\r\n\r\n") == 2 and b"usage" not in transport.written
    assert json.loads(transport.written.split(b"\r\n")[1][5:]) == {"choices": [{"index": 0}]}


def test_finish_chunks_wait_for_the_fingerprint_of_the_usage_chunk():
    sse, transport, outcome = relay()
    sse.feed(chunk(0, 1))
    sse.feed(chunk(0, 2, finish="length"))
    assert b"length" not in transport.written, "held until the usage chunk says the fingerprint"
    sse.feed(event({"id": "c", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2},
                    "system_fingerprint": "fp-1"}) + b"data: [DONE]\n\n")
    assert b'"finish_reason":"length"}],"system_fingerprint":"fp-1"}\n\ndata: [DONE]' in transport.written
    assert transport.written.count(b"choices") == 2 and b"[DONE]" in transport.written
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (9, 2)


def test_a_read_of_a_crlf_event_then_an_lf_event_is_two_events():
    sse, transport, outcome = relay()
    sse.feed(chunk(0, 1))
    sse.feed(chunk(0, 2)[:-2] + b"\r\n\r\n" + chunk(0, 3, finish="stop", compact=False))
    assert b"usage" not in transport.written and b"stop" not in transport.written, "the finish chunk is held"
    sse.feed(event({"id": "c", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3},
                    "system_fingerprint": "fp-1"}) + b"data: [DONE]\n\n")
    assert b'"system_fingerprint":"fp-1"' in transport.written and b"usage" not in transport.written
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (9, 3)
