"""Relaying an upstream's Server-Sent Events to the client as they arrive.

Whole events only (a partial event waits for its end, up to MAX_EVENT_BYTES), written straight to
the client's transport in HTTP/1.1 chunked framing; the usage in the final usage chunk is counted,
and that chunk is dropped when the client did not ask for it (the gateway asked on its behalf).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable

from aiohttp.abc import AbstractStreamWriter

from .metrics import Outcome
from .relay import USAGE, ClientGone, ClientRelay
from .upstream_client import UpstreamBroken

# A plain substring test is several times cheaper than the regex and rules out almost every
# streamed chunk; the regex then only runs on the final usage chunk.
_USAGE_KEY = b'"usage"'
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

    def __init__(self, transport: asyncio.Transport, writer: AbstractStreamWriter, client_wants_usage: bool,
                 outcome: Outcome, on_first_chunk: Callable[[], None]):
        super().__init__(transport, writer, chunked=True)
        self._client_wants_usage = client_wants_usage
        self._outcome = outcome
        self._on_first_chunk: Callable[[], None] | None = on_first_chunk
        # The pieces of an unfinished event, joined only once its end arrives: joining on every
        # read would make a long event cost quadratic time.
        self._pending: list[bytes] = []
        self._pending_size = 0

    def feed(self, data: bytes) -> bool:
        """Relay what can be relayed of `data`; True when the client's buffer is full (or it has gone)."""
        if self._on_first_chunk is not None:
            self._on_first_chunk()
            self._on_first_chunk = None
        if self._pending:
            # An event end may straddle the previous piece and this one.
            if not _has_event_end(self._pending[-1][-3:] + data):
                self._hold(data)
                return False
            data = b"".join(self._pending) + data
            self._pending, self._pending_size = [], 0
        if not data.endswith(b"\n\n"):  # usually whole events, as vLLM writes them
            end = _complete_events_end(data)
            if end < len(data):
                self._hold(data[end:])
            data = data[:end]
        if _USAGE_KEY in data and USAGE.search(data):
            data = _take_usage(data, self._client_wants_usage, self._outcome)
        if _DONE_KEY in data and _DONE.search(data) and not self._transport.is_closing():
            self._outcome.answered = True
        return self._write(data)

    def finish(self) -> None:
        """The upstream's reply ended: whatever is left of an unterminated event goes out as it is."""
        if self._pending:
            self._write(b"".join(self._pending))
            self._pending, self._pending_size = [], 0
        if self._transport.is_closing():
            raise ClientGone()

    def _hold(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._pending_size += len(piece)
        if self._pending_size > MAX_EVENT_BYTES:
            raise UpstreamBroken(f"the upstream sent a stream event larger than {MAX_EVENT_BYTES} bytes")



def _has_event_end(data: bytes) -> bool:
    return b"\n\n" in data or b"\r\n\r\n" in data


def _complete_events_end(data: bytes) -> int:
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def _take_usage(events: bytes, client_wants_usage: bool, outcome: Outcome) -> bytes:
    """Count the usage in these SSE events; drop the usage-only chunk if the client did not ask for it."""
    kept = []
    position = 0
    for boundary in _EVENT_END.finditer(events):
        event = events[position:boundary.end()]
        position = boundary.end()
        if USAGE.search(event):
            try:
                chunk = json.loads(event.strip().removeprefix(b"data:"))
            except ValueError:
                chunk = None
            if isinstance(chunk, dict):
                outcome.add_usage(chunk.get("usage"))
                if not client_wants_usage and chunk.get("choices") == []:
                    continue
        kept.append(event)
    kept.append(events[position:])
    return b"".join(kept)
