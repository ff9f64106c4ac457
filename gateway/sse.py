"""Relaying an upstream's Server-Sent Events to the client as they arrive, and counting their tokens.

Whole events only (a partial event waits for its end, up to MAX_EVENT_BYTES), written straight to
the client's transport in HTTP/1.1 chunked framing.

The gateway asks every chat and completions stream for usage on each chunk and a final usage
chunk (gateway/stream_request.py). vLLM's usage is cumulative (V = vLLM 0.32's site-packages/vllm:
V/entrypoints/openai/chat_completion/serving.py:813-826, completion/serving.py:433-440): each
chunk's usage is the prompt and the tokens of its choice so far, and the final chunk
(`"choices": []`) the totals. So the tokens counted are the last usage seen per choice, replaced
by the totals when they come: never a sum of chunks, and what was relayed when a stream ends early.
What the client did not ask for is taken out: the usage member of each chunk, the final usage
chunk, and with it vLLM's `system_fingerprint`, which rides on that chunk when usage is asked for
and on the finish chunks when it is not (serving.py:802-811): it is put back there, so the stream
is the one vLLM sends for the client's own request. The finish chunks are held until the usage
chunk (right after the last of them) says the fingerprint.

A Responses API stream reports usage only in its final event (V/entrypoints/openai/responses); until
then each relayed `*.delta` event counts as one output token.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable

from aiohttp.abc import AbstractStreamWriter

from .metrics import Outcome, count
from .relay import ClientGone, ClientRelay
from .stream_request import StreamPlan
from .upstream_client import UpstreamBroken

_USAGE_KEY = b'"usage"'
# The value of a "usage" key: an object with at most one level of objects inside (vLLM's
# *_tokens_details); `"usage": null` is no usage.
_USAGE_VALUE = re.compile(rb'"usage"\s*:\s*(\{(?:[^{}]|\{[^{}]*\})*\})')
_SPACE = b" \t\r\n"
_COMMA_AFTER = re.compile(rb"\s*,")
# The first choice's index, or an empty choices list (the final usage chunk). vLLM sends one
# choice per chunk; choice i of completions with several prompts answers prompt i // n.
_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*(?:\{\s*"index"\s*:\s*(\d+)|(\]))')
_FINISHED = re.compile(rb'"finish_reason"\s*:\s*"')
_FINGERPRINT = re.compile(rb'"system_fingerprint"\s*:\s*("(?:[^"\\]|\\.)*")')
_DELTA = re.compile(rb'"type"\s*:\s*"response\.[a-z_.]*delta"')
_EVENT_END = re.compile(rb"\r?\n\r?\n")
# The stream's last event. Events are relayed whole, so it starts the data or follows a line
# break; a JSON string cannot hold a raw line break, so a token reading "data: [DONE]" never matches.
_DONE_KEY = b"[DONE]"
_DONE = re.compile(rb"^data: ?\[DONE\]", re.MULTILINE)
# vLLM's events are a few hundred bytes (a few KiB with logprobs). A "stream" without blank
# lines would otherwise be held whole; beyond this it is cut as a broken upstream reply.
MAX_EVENT_BYTES = 1 << 20


class SseRelay(ClientRelay):
    """The sink for one streamed reply (see UpstreamConnection.relay)."""

    def __init__(self, transport: asyncio.Transport, writer: AbstractStreamWriter, plan: StreamPlan,
                 outcome: Outcome, on_first_chunk: Callable[[], None]):
        super().__init__(transport, writer, chunked=True)
        self._plan = plan
        self._outcome = outcome
        self._on_first_chunk: Callable[[], None] | None = on_first_chunk
        # The pieces of an unfinished event, joined only once its end arrives: joining on every
        # read would make a long event cost quadratic time.
        self._pending: list[bytes] = []
        self._pending_size = 0
        # The tokens so far: the prompt of each prompt, the completion of each choice.
        self._prompts: dict[int, int] = {}
        self._completions: dict[int, int] = {}
        self._final = False  # the final usage came: its totals stand
        # Events from the first finish chunk on, held for the fingerprint: (event, where it goes or -1).
        self._held: list[tuple[bytes, int]] | None = None

    def feed(self, data: bytes) -> bool:
        """Relay what can be relayed of `data`; True when the client's buffer is full (or it has gone)."""
        if self._transport.is_closing():
            return True  # nothing more is relayed, or counted; the relay stops at its next drain()
        if self._on_first_chunk is not None:
            self._on_first_chunk()
            self._on_first_chunk = None
        if self._pending:
            # An event end may straddle the previous piece and this one.
            if not _has_event_end(self._pending[-1][-3:] + data):
                self._hold_piece(data)
                return False
            data = b"".join(self._pending) + data
            self._pending, self._pending_size = [], 0
        if not data.endswith(b"\n\n"):  # usually whole events, as vLLM writes them
            end = _complete_events_end(data)
            if end < len(data):
                self._hold_piece(data[end:])
            data = data[:end]
        if self._plan.responses:
            self._count_responses(data)
        elif _USAGE_KEY in data or self._held is not None or (not self._plan.usage_chunk and _FINISHED.search(data)):
            data = self._events(data)
        if _DONE_KEY in data and _DONE.search(data):
            self._outcome.answered = True
        return self._write(data)

    def finish(self) -> None:
        """The upstream's reply ended: what is held, and an unterminated event as it is, go out."""
        rest = b"".join(self._pending)
        self._pending, self._pending_size = [], 0
        if self._held is not None:
            rest = self._release(None) + rest
        self._write(rest)
        if self._transport.is_closing():
            raise ClientGone()

    def _hold_piece(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._pending_size += len(piece)
        if self._pending_size > MAX_EVENT_BYTES:
            raise UpstreamBroken(f"the upstream sent a stream event larger than {MAX_EVENT_BYTES} bytes")

    def _events(self, events: bytes) -> bytes:
        kept = []
        position = 0
        for boundary in _EVENT_END.finditer(events):
            kept.append(self._event(events[position:boundary.end()]))
            position = boundary.end()
        kept.append(events[position:])
        return b"".join(kept)

    def _event(self, event: bytes) -> bytes:
        """One whole event as it goes to the client (b"" while held or when dropped), its tokens counted."""
        member = _usage_member(event)
        choices = _CHOICES.search(event)
        final = choices is not None and choices.group(2) is not None
        fingerprint_at = -1
        if member is not None:
            start, end, fingerprint_at, usage = member
            if final:
                self._final = True
                self._outcome.set_usage(usage)
            else:
                self._count_chunk(int(choices.group(1)) if choices is not None else 0, usage)
                if not self._plan.chunk_usage:
                    event = event[:start] + event[end:]
        if final and not self._plan.usage_chunk:
            return self._release(_FINGERPRINT.search(event))  # the usage chunk the gateway asked for
        if self._held is None and (self._plan.usage_chunk or not _FINISHED.search(event)):
            return event
        if self._held is None:
            self._held = []
        elif _DONE.search(event):
            return self._release(None) + event
        if _FINISHED.search(event):
            self._held.append((event, fingerprint_at if fingerprint_at >= 0 else event.rfind(b"}")))
        else:
            self._held.append((event, -1))
        return b""

    def _release(self, fingerprint: re.Match | None) -> bytes:
        """The held events, the fingerprint put where vLLM puts it without include_usage."""
        held, self._held = self._held or [], None
        if fingerprint is None:
            return b"".join(event for event, _ in held)
        member = b',"system_fingerprint":' + fingerprint.group(1)
        return b"".join(event[:at] + member + event[at:] if at >= 0 else event for event, at in held)

    def _count_chunk(self, index: int, usage: dict) -> None:
        if self._final:
            return
        self._prompts[index // self._plan.choices_per_prompt] = count(usage.get("prompt_tokens"))
        self._completions[index] = count(usage.get("completion_tokens"))
        self._outcome.prompt_tokens = sum(self._prompts.values())
        self._outcome.completion_tokens = sum(self._completions.values())

    def _count_responses(self, data: bytes) -> None:
        if self._final:
            return
        self._outcome.completion_tokens += len(_DELTA.findall(data))
        if _USAGE_KEY in data:
            member = _usage_member(data)
            if member is not None:
                self._final = True
                self._outcome.set_usage(member[3])


def _usage_member(event: bytes) -> tuple[int, int, int, dict] | None:
    """The event's usage object: the span of its member with one comma, where a member could take its
    place (-1: not after another member), and the usage; None without one."""
    at = event.find(_USAGE_KEY)
    while at >= 0:
        found = _USAGE_VALUE.match(event, at)
        if found is not None:
            try:
                usage = json.loads(found.group(1))
            except ValueError:
                return None
            start, end = at, found.end()
            while start and event[start - 1] in _SPACE:
                start -= 1
            if start and event[start - 1] == 0x2C:  # a comma: the member follows another
                return start - 1, end, start - 1, usage
            comma = _COMMA_AFTER.match(event, end)
            return at, comma.end() if comma else end, -1, usage
        at = event.find(_USAGE_KEY, at + 1)
    return None


def _has_event_end(data: bytes) -> bool:
    return b"\n\n" in data or b"\r\n\r\n" in data


def _complete_events_end(data: bytes) -> int:
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
