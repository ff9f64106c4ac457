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
