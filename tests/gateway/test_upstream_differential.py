"""The upstream client's reading of upstream bytes against h11's (a reference HTTP/1.1 parser),
on generated streams: informational replies, every framing, keep-alive or not, bytes beyond the
reply, truncation, any split into reads, with or without the upstream closing.

For well-formed streams the outcome must be the same: which reply (status and body), and whether
the connection may carry another request. Two rules are the client's own, stricter than h11:
constructs that make framing ambiguous (Content-Length beside chunked, folded headers, bare LF
line ends) are refused, and no byte may follow a reply except CR/LF in the same read (llhttp skips
those, as RFC 9112 section 2.2 allows). For corrupted streams, the client may refuse more than h11
does, never less: whatever reply it delivers, h11 delivers too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import h11
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.upstream_client import UpstreamConnection, UpstreamError

REQUEST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: up\r\nContent-Length: 2\r\n\r\n{}"
STATUSES = (200, 201, 204, 400, 401, 404, 429, 500, 502, 503)
AFTER = (b"", b"", b"", b"\r\n", b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 1\r\n\r\nx", b"garbage")
AMBIGUOUS = ("length beside chunked", "folded header", "bare LF")
# One loop for every example: a new one each time costs more than the example.
_LOOP = asyncio.new_event_loop()
EXAMPLES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Stream:
    data: bytes
    cuts: tuple[int, ...]  # where the reads split the data
    eof: bool  # the upstream closes after the data
    ambiguous: str | None = None

    def pieces(self) -> list[bytes]:
        bounds = (0, *self.cuts, len(self.data))
        return [self.data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


# An outcome: ("reusable" | "complete" | "broken" | "pending", status, body); status and body only
# for a delivered reply.
Outcome = tuple


def chunked(body: bytes, sizes: list[int], extension: bool, trailer: bool) -> bytes:
    out, position = b"", 0
    for size in sizes:
        if position >= len(body):
            break
        piece = body[position:position + size]
        position += len(piece)
        out += b"%x%b\r\n%b\r\n" % (len(piece), b";ext=1" if extension else b"", piece)
    if position < len(body):
        out += b"%x\r\n%b\r\n" % (len(body) - position, body[position:])
    return out + b"0\r\n" + (b"X-Trailer: t\r\n" if trailer else b"") + b"\r\n"


@st.composite
def streams(draw) -> Stream:
    data = b""
    for _ in range(draw(st.integers(0, 2))):
        code = draw(st.sampled_from((100, 102, 103)))
        data += b"HTTP/1.1 %d Info\r\n%b\r\n" % (code, b"Link: </a.css>; rel=preload\r\n" if code == 103 else b"")
    version = draw(st.sampled_from((b"1.1", b"1.1", b"1.1", b"1.0")))
    status = draw(st.sampled_from(STATUSES))
    body = b"" if status == 204 else draw(st.binary(max_size=120))
    framing = "length" if status == 204 else draw(st.sampled_from(("length", "chunked", "close")))
    if version == b"1.0" and framing == "chunked":
        framing = "length"
    headers = [b"Content-Type: application/json"]
    connection = draw(st.sampled_from((None, b"close", b"keep-alive")))
    if connection:
        headers.append(b"Connection: " + connection)
    payload = body
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(body))
    elif framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked")
        payload = chunked(body, draw(st.lists(st.integers(1, 40), max_size=4)), draw(st.booleans()), draw(st.booleans()))
    ambiguous = draw(st.sampled_from((None,) * 6 + AMBIGUOUS))
    if ambiguous == "length beside chunked" and framing == "close":
        ambiguous = None
    if ambiguous == "length beside chunked":
        headers.append(b"Content-Length: %d" % len(payload) if framing == "chunked" else b"Transfer-Encoding: chunked")
    elif ambiguous == "folded header":
        headers.insert(0, b"X-Folded: a\r\n b")
    head = b"HTTP/%b %d Reason\r\n%b\r\n\r\n" % (version, status, b"\r\n".join(headers))
    if ambiguous == "bare LF":
        head = head.replace(b"\r\n", b"\n")
    data += head + payload + draw(st.sampled_from(AFTER))
    if not ambiguous and draw(st.integers(0, 9)) == 0:  # the upstream stops part way
        data = data[:draw(st.integers(0, len(data) - 1))]
    cuts = tuple(sorted(draw(st.sets(st.integers(1, len(data) - 1), max_size=5)))) if len(data) > 1 else ()
    return Stream(data, cuts, draw(st.booleans()), ambiguous)


@st.composite
def corrupted(draw) -> Stream:
    stream = draw(streams())
    data = bytearray(stream.data)
    for _ in range(draw(st.integers(1, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return Stream(bytes(data), stream.cuts, stream.eof)


class _Transport:
    """What an UpstreamConnection uses of its transport, with no socket behind it."""

    def __init__(self) -> None:
        self.closing = False

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def ours(stream: Stream) -> Outcome:
    async def read() -> Outcome:
        connection = UpstreamConnection(("up", 80, None))
        transport = _Transport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        connection.send(REQUEST, read_timeout_s=0)
        for piece in stream.pieces():
            if transport.closing:
                break  # an aborted connection reads nothing more
            connection.data_received(piece)
        if stream.eof and not transport.closing:
            transport.closing = True
            connection.connection_lost(None)
        body = asyncio.ensure_future(connection.read_body())
        await asyncio.sleep(0)  # one pass: read_body returns, raises, or waits for more data
        if not body.done():
            body.cancel()
            return ("pending",)
        if isinstance(body.exception(), UpstreamError):
            return ("broken",)
        return ("reusable" if connection.reusable else "complete", connection.status, body.result())

    return _LOOP.run_until_complete(read())


def reference(stream: Stream) -> Outcome:
    """h11's reading, plus the client's rule on bytes beyond the reply."""
    parser = h11.Connection(h11.CLIENT)
    parser.send(h11.Request(method="POST", target="/v1/chat/completions", headers=[("Host", "up"), ("Content-Length", "2")]))
    parser.send(h11.Data(data=b"{}"))
    parser.send(h11.EndOfMessage())
    if stream.data:  # h11 takes empty data for the upstream closing
        parser.receive_data(stream.data)
    if stream.eof:
        parser.receive_data(b"")
    status, body = 0, b""
    try:
        while True:
            event = parser.next_event()
            if event is h11.NEED_DATA:
                return ("pending",)
            if isinstance(event, h11.ConnectionClosed):
                return ("broken",)
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
    except h11.RemoteProtocolError:
        return ("broken",)
    beyond, closed = parser.trailing_data
    reusable = (parser.their_state is h11.DONE and not closed
                and (not beyond or _tolerated_after_reply(stream, len(stream.data) - len(beyond))))
    return ("reusable" if reusable else "complete", status, body)


def _tolerated_after_reply(stream: Stream, reply_end: int) -> bool:
    """CR/LF right after the reply, in the read that ended it, and nothing in a later read."""
    read_end = next((cut for cut in stream.cuts if cut >= reply_end), len(stream.data))
    return read_end == len(stream.data) and not stream.data[reply_end:].strip(b"\r\n")


@EXAMPLES
@given(streams())
def test_well_formed_streams_read_as_h11_reads_them(stream):
    expected = ("broken",) if stream.ambiguous else reference(stream)
    assert ours(stream) == expected


@EXAMPLES
@given(corrupted())
# A coding that is not chunked: llhttp gives a 204 no body whatever its framing says; h11 refuses it.
@example(Stream(b"HTTP/1.1 204 Reason\r\nContent-Type: application/json\r\nConnection: close\r\n"
                b"*ontent-Length: 0\r\nTransfer-Encoding:  hunked\r\n\r\n", (), False, None))
def test_corrupted_streams_never_deliver_a_reply_h11_would_not(stream):
    outcome = ours(stream)
    if outcome[0] in ("reusable", "complete"):
        expected = reference(stream)
        assert expected[1:] == outcome[1:]
        if outcome[0] == "reusable":
            assert expected[0] == "reusable"
