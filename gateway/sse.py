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
import re
from collections.abc import Callable

from aiohttp.abc import AbstractStreamWriter

from .metrics import Outcome, count
from .relay import ClientGone, ClientRelay
from .stream_request import StreamPlan
from .upstream_client import UpstreamBroken

# Every chunk of a stream carries usage, so finding it is kept to scans in C: patterns that start
# with a literal, bytes.find and bytes.count (a general regex over each chunk cost 10 us here).
# vLLM's compact JSON first (V/entrypoints/openai/chat_completion/serving.py:829, model_dump_json),
# then the same with any spacing.
_USAGE_KEY = b'"usage"'
_COMPACT_USAGE = b',"usage":{'
_USAGE_OPENING = len(_COMPACT_USAGE) - 1  # where its object starts
_USAGE = re.compile(rb'"usage"\s*:\s*\{')  # `"usage": null` is no usage
_COMPACT_PROMPT, _COMPACT_COMPLETION = b'"prompt_tokens":', b'"completion_tokens":'
# The counts in a usage object, in either API's names; not "total_tokens" nor the *_details inside.
_TOKENS = re.compile(rb'"(prompt|input|completion|output)_tokens"\s*:\s*(\d+)')
_PROMPT_NAMES = (b"prompt", b"input")
_INT = re.compile(rb"\d+")
_SPACE = b" \t\r\n"
_COMMA_AFTER = re.compile(rb"\s*,")
# The first choice's index, or an empty choices list (the final usage chunk). vLLM sends one
# choice per chunk; choice i of completions with several prompts answers prompt i // n.
_COMPACT_CHOICES = b'"choices":['
_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*(?:\{\s*"index"\s*:\s*(\d+)|(\]))')
_FINISH_KEY = b'"finish_reason":'  # followed by a string unless it is null
_CHOICE_0 = b'{"index":0,'
_COMPACT_EVENT = b"data: {"
# The usage vLLM puts on each chunk (UsageInfo: V/entrypoints/serve/engine/protocol.py), matched where it starts.
_CHUNK_USAGE = re.compile(rb',"usage":\{"prompt_tokens":(\d+),"total_tokens":\d+,"completion_tokens":(\d+)'
                          rb'(?:,"completion_tokens_details":null)?\}')
# The end of a chunk of the only choice that is not finishing, as vLLM writes it: its null finish
# reason (a JSON string cannot hold `"finish_reason":`, so it is the choice's own), the choice's
# other plain members (stop_reason, token_ids), and the usage member last.
_ONE_CHOICE_TAIL = re.compile(
    rb'"finish_reason":null(?:,"[a-z_]+":(?:null|-?\d+|"[^"\\]*"))*\}\]'
    rb'(,"usage":\{"prompt_tokens":(\d+),"total_tokens":\d+,"completion_tokens":(\d+)'
    rb'(?:,"completion_tokens_details":null)?\})\}\n\n\Z')
_TAIL_BYTES = 256  # where that end can start, at most, counted from the chunk's end
_FINGERPRINT = re.compile(rb'"system_fingerprint"\s*:\s*("(?:[^"\\]|\\.)*")')
_DELTA = re.compile(rb'"type"\s*:\s*"response\.[a-z_.]*delta"')
_EVENT_END = b"\n\n"
_EVENT_END_CRLF = re.compile(rb"(\r?\n\r?\n)")
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
        # A stream of one choice (one prompt, n=1) takes the quick path of feed() from its second
        # read on, while no piece of an event is pending and nothing is held.
        self._one_choice = plan.one_choice and not plan.responses
        self._quick = False
        # The usage of the last chunk the quick path relayed, counted by settle().
        self._last_usage: re.Match | None = None

    def feed(self, data: bytes) -> bool:
        """Relay what can be relayed of `data`; True when the client's buffer is full (or it has gone)."""
        # Nearly every read of a stream: one chunk of the only choice, on one line, not finishing,
        # its usage last. This runs for every token, and on a busy core each Python step of it
        # costs about a microsecond (docs/performance.md, run 13), so it takes as few as it can.
        if self._quick and data.find(b"\n") == len(data) - 2 and data.startswith(_COMPACT_EVENT):
            tail = _ONE_CHOICE_TAIL.search(data, len(data) - _TAIL_BYTES)
            if tail is not None:  # a chunk of JSON on one line, so not [DONE]
                transport = self._transport
                if transport.is_closing():
                    return True
                self._last_usage = tail
                if self._plan.chunk_usage:
                    transport.write(b"%x\r\n%b\r\n" % (len(data), data))
                else:  # the usage member is the last before the chunk's `}`
                    start = tail.start(1)
                    transport.write(b"%x\r\n%b}\n\n\r\n" % (start + 3, data[:start]))
                return transport.get_write_buffer_size() > self._high_water
        if self._transport.is_closing():
            return True  # nothing more is relayed, or counted; the relay stops at its next drain()
        full = self._feed(data)
        self._quick = self._one_choice and self._held is None and not self._pending
        return full

    def settle(self) -> None:
        """The relay is over (or cut): the tokens of the last chunk the quick path relayed stand,
        unless a later chunk or the final usage was counted."""
        if self._last_usage is not None and not self._final:
            self._outcome.prompt_tokens, self._outcome.completion_tokens = map(int, self._last_usage.group(2, 3))
        self._last_usage = None

    def _feed(self, data: bytes) -> bool:
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
        elif _USAGE_KEY in data or self._held is not None or (not self._plan.usage_chunk and _finished(data)):
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
        self.settle()
        if self._transport.is_closing():
            raise ClientGone()

    def _hold_piece(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._pending_size += len(piece)
        if self._pending_size > MAX_EVENT_BYTES:
            raise UpstreamBroken(f"the upstream sent a stream event larger than {MAX_EVENT_BYTES} bytes")

    def _choice_0_chunk(self, event: bytes) -> bytes | None:
        """A whole event that is a chunk of choice 0 with its usage last and not finishing, as it goes
        to the client; None for any other event. Each scan of an event costs about 0.3 us here, so
        this takes as few as it can."""
        choices = event.find(_COMPACT_CHOICES)
        if choices < 0 or not event.startswith(_CHOICE_0, choices + len(_COMPACT_CHOICES)):
            return None
        at = event.rfind(_COMPACT_USAGE, choices)
        usage = _CHUNK_USAGE.match(event, at) if at >= 0 else None
        if usage is None:
            return None
        if not self._plan.usage_chunk:
            # A finishing chunk is held for the fingerprint (see _event). vLLM writes
            # `"finish_reason":null` until then; anything else, or a second one, is left to _event.
            finish = event.find(_FINISH_KEY, choices, at)
            if finish >= 0 and (event[finish + len(_FINISH_KEY)] != 0x6E  # n, of null
                                or event.find(_FINISH_KEY, finish + len(_FINISH_KEY), at) >= 0):
                return None
        self._count_chunk(0, int(usage[1]), int(usage[2]))
        return event if self._plan.chunk_usage else event[:at] + event[usage.end():]

    def _events(self, data: bytes) -> bytes:
        """The events of `data` (whole ones) as they go to the client."""
        if b"\r" not in data:  # vLLM's line ends; a JSON string holds no raw CR
            if data.find(_EVENT_END) == len(data) - len(_EVENT_END):  # one event, as vLLM writes them
                return self._event(data)
            return b"".join([self._event(event + _EVENT_END) for event in data.split(_EVENT_END)[:-1]])
        parts = _EVENT_END_CRLF.split(data)  # event, its end, event, its end, ..., b""
        return b"".join([self._event(event + end) for event, end in zip(parts[:-1:2], parts[1::2], strict=True)])

    def _event(self, event: bytes) -> bytes:
        """One whole event (its end included) as it goes to the client: b"" while held or when dropped."""
        usual = self._choice_0_chunk(event) if self._held is None else None
        if usual is not None:
            return usual
        member = _usage_member(event) if _USAGE_KEY in event else None
        index = _choice(event)
        final = index < 0
        fingerprint_at = -1
        if member is not None:
            start, stop, fingerprint_at, prompt, completion = member
            if final:
                self._final = True
                self._outcome.prompt_tokens, self._outcome.completion_tokens = prompt, completion
            else:
                self._count_chunk(index, prompt, completion)
                if not self._plan.chunk_usage:
                    event = event[:start] + event[stop:]
        if final and not self._plan.usage_chunk:
            return self._release(_FINGERPRINT.search(event))  # the usage chunk the gateway asked for
        if self._held is None and (self._plan.usage_chunk or not _finished(event)):
            return event
        if self._held is None:
            self._held = []
        elif _DONE.search(event):
            return self._release(None) + event
        self._held.append((event, (fingerprint_at if fingerprint_at >= 0 else event.rfind(b"}"))
                           if _finished(event) else -1))
        return b""

    def _release(self, fingerprint: re.Match | None) -> bytes:
        """The held events, the fingerprint put where vLLM puts it without include_usage."""
        held, self._held = self._held or [], None
        if fingerprint is None:
            return b"".join(event for event, _ in held)
        member = b',"system_fingerprint":' + fingerprint.group(1)
        return b"".join(event[:at] + member + event[at:] if at >= 0 else event for event, at in held)

    def _count_chunk(self, index: int, prompt: int, completion: int) -> None:
        if self._final:
            return
        self._last_usage = None  # this chunk is later than what the quick path relayed
        prompts, completions = self._prompts, self._completions
        prompts[index // self._plan.choices_per_prompt] = prompt
        completions[index] = completion
        if len(completions) == 1:  # one choice so far, as in nearly every stream: no sums
            self._outcome.prompt_tokens, self._outcome.completion_tokens = prompt, completion
        else:
            self._outcome.prompt_tokens = sum(prompts.values())
            self._outcome.completion_tokens = sum(completions.values())

    def _count_responses(self, data: bytes) -> None:
        if self._final:
            return
        self._outcome.completion_tokens += len(_DELTA.findall(data))
        member = _usage_member(data) if _USAGE_KEY in data else None
        if member is not None:
            self._final = True
            self._outcome.prompt_tokens, self._outcome.completion_tokens = member[3:]


def _finished(data: bytes, start: int = 0) -> bool:
    """A finish reason that is not null (vLLM puts one choice in a chunk)."""
    at = data.find(_FINISH_KEY, start)
    while at >= 0:
        value = at + len(_FINISH_KEY)
        while data[value] in _SPACE:
            value += 1
        if data[value] == 0x22:  # a string
            return True
        at = data.find(_FINISH_KEY, value)
    return False


def _choice(event: bytes) -> int:
    """The index of the event's first choice; -1 for an empty choices list (the final usage chunk), else 0."""
    at = event.find(_COMPACT_CHOICES) + len(_COMPACT_CHOICES)
    if at >= len(_COMPACT_CHOICES):
        if event.startswith(b'{"index":', at):
            digits = _INT.match(event, at + 9)
            return int(digits.group()) if digits else 0
        if event.startswith(b"]", at):
            return -1
    found = _CHOICES.search(event)
    if found is None:
        return 0
    return -1 if found.group(2) else int(found.group(1))


def _usage_member(event: bytes) -> tuple[int, int, int, int, int] | None:
    """The event's usage object: the span of its member with one comma, where another member could
    take its place (-1: not after another member), and its prompt and completion tokens; None without one."""
    compact = event.find(_COMPACT_USAGE)
    if compact >= 0:
        key, opening = compact + 1, compact + _USAGE_OPENING
    else:
        found = _USAGE.search(event)
        if found is None:
            return None
        key, opening = found.start(), found.end() - 1
    closing = _object_end(event, opening)
    if closing < 0:
        return None
    prompt, completion = _tokens(event, opening, closing)
    start = key
    while start and event[start - 1] in _SPACE:
        start -= 1
    if start and event[start - 1] == 0x2C:  # a comma: the member follows another
        return start - 1, closing, start - 1, prompt, completion
    comma = _COMMA_AFTER.match(event, closing)
    return key, comma.end() if comma else closing, -1, prompt, completion


def _object_end(data: bytes, opening: int) -> int:
    """The end of the object at data[opening] (a `{`), -1 if it has none; for usage objects, which
    hold numbers, lists of them and *_details objects, never strings (so no brace is quoted)."""
    closing = opening
    while True:
        closing = data.find(b"}", closing) + 1
        if not closing:
            return -1
        if data.count(b"{", opening, closing) == data.count(b"}", opening, closing):
            return closing


def _tokens(event: bytes, opening: int, closing: int) -> tuple[int, int]:
    """The prompt and completion tokens of the usage object event[opening:closing]."""
    prompt_at, completion_at = event.find(_COMPACT_PROMPT, opening, closing), event.find(_COMPACT_COMPLETION, opening, closing)
    if prompt_at >= 0 and completion_at >= 0:
        prompt, completion = _INT.match(event, prompt_at + len(_COMPACT_PROMPT)), _INT.match(
            event, completion_at + len(_COMPACT_COMPLETION))
        if prompt and completion:
            return int(prompt.group()), int(completion.group())
    counts = {b"prompt": 0, b"completion": 0}
    for name, value in _TOKENS.findall(event, opening, closing):
        counts[b"prompt" if name in _PROMPT_NAMES else b"completion"] = count(int(value))
    return counts[b"prompt"], counts[b"completion"]


def _has_event_end(data: bytes) -> bool:
    return b"\n\n" in data or b"\r\n\r\n" in data


def _complete_events_end(data: bytes) -> int:
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
