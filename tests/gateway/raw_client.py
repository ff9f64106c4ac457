"""A client on a raw socket, for what the SDKs never send: malformed requests, slow heads, a
client that stops reading. Replies are read with h11, which parses them by the book."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import h11


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    informational: list[int] = field(default_factory=list)


class RawClient:
    def __init__(self, port: int, timeout_s: float = 5.0, receive_buffer: int | None = None):
        self.sock = socket.socket()
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout_s)
        self.sock.connect(("127.0.0.1", port))
        self._parser = self._expect_reply()

    def _expect_reply(self) -> h11.Connection:
        parser = h11.Connection(h11.CLIENT)
        # h11 parses a reply only after a request of its own: tell it one was sent (the real bytes are ours).
        parser.send(h11.Request(method="POST", target="/", headers=[("Host", "gateway"), ("Content-Length", "0")]))
        parser.send(h11.EndOfMessage())
        return parser

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> Reply:
        """The next reply, 1xx replies before it listed in `informational`."""
        informational: list[int] = []
        status, headers, body = 0, {}, b""
        while True:
            try:
                event = self._parser.next_event()
            except h11.RemoteProtocolError as exc:
                raise ConnectionError(f"the reply broke off: {exc}") from exc
            if event is h11.NEED_DATA:
                self._parser.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.InformationalResponse):
                informational.append(event.status_code)
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {name.decode().lower(): value.decode() for name, value in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                if self._parser.our_state is h11.DONE and self._parser.their_state is h11.DONE:
                    self._parser.start_next_cycle()
                    self._parser.send(h11.Request(method="POST", target="/",
                                                  headers=[("Host", "gateway"), ("Content-Length", "0")]))
                    self._parser.send(h11.EndOfMessage())
                return Reply(status, headers, body, informational)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed before a whole reply")

    def next_informational(self) -> int | None:
        """The status of a 1xx reply if one arrives within the socket's timeout, else None."""
        try:
            while True:
                event = self._parser.next_event()
                if isinstance(event, h11.InformationalResponse):
                    return event.status_code
                if event is not h11.NEED_DATA:
                    raise AssertionError(f"expected a 1xx reply, got {event!r}")
                self._parser.receive_data(self.sock.recv(65536))
        except TimeoutError:
            return None

    def closed_within(self, seconds: float) -> bool:
        """Whether the gateway closes the connection within `seconds` (whatever it sends first is read and dropped)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not self.sock.recv(65536):
                    return True
            except TimeoutError:
                return False
            except ConnectionError:
                return True
        return False

    def close(self) -> None:
        self.sock.close()


def request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"",
            length: int | None = None) -> bytes:
    """A request's bytes; `length` announces another Content-Length than the body's (a body yet to come)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway", f"Content-Length: {len(body) if length is None else length}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
