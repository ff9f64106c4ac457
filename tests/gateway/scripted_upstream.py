"""A misbehaving upstream: each request on a connection is answered by a script that writes raw
bytes, so a test can send what no well-behaved server would. In the test's own event loop
(ScriptedUpstream), or on a thread of its own for a gateway process to call (ThreadedUpstream)."""

from __future__ import annotations

import asyncio
import threading


class ScriptedUpstream:
    """Answers each request with `script(writer)`, a coroutine that writes the reply; it returns
    False to close the connection after it."""

    def __init__(self, script):
        self.script = script
        self.connections = 0
        self.closed_by_peer = 0
        self.requests: list[bytes] = []
        self.request_connections: list[int] = []  # which connection (1, 2, ...) carried each request

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = ("127.0.0.1", self.server.sockets[0].getsockname()[1], None)
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                self.requests.append(head + await reader.readexactly(length))
                self.request_connections.append(number)
                if await self.script(writer) is False:
                    break
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                self.closed_by_peer += 1
        except ConnectionError:
            self.closed_by_peer += 1
        finally:
            writer.close()


class ThreadedUpstream:
    def __init__(self, script):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="scripted-upstream", daemon=True)
        self._thread.start()
        self.upstream = asyncio.run_coroutine_threadsafe(ScriptedUpstream(script).__aenter__(), self.loop).result(5)
        self.url = f"http://127.0.0.1:{self.upstream.address[1]}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    async def _stop(self) -> None:
        self.upstream.server.close()
        scripts = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in scripts:
            task.cancel()
        await asyncio.gather(*scripts, return_exceptions=True)


def reply(data: bytes, keep_open: bool = True):
    async def script(writer):
        writer.write(data)
        await writer.drain()
        return keep_open
    return script


def json_reply(body: bytes, status: str = "200 OK") -> bytes:
    return b"HTTP/1.1 %b\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (
        status.encode(), len(body), body)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


HEAD_CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
