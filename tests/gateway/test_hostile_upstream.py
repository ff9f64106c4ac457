"""The gateway in front of an upstream that misbehaves: replies nobody asked for, two replies in one
write, bytes after a stream, an upgrade, a reply of 200 MB, a stream without event ends."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.gateway.harness import KEYS, sha256, wait_for
from tests.gateway.raw_client import RawClient, request
from tests.gateway.scripted_upstream import HEAD_CHUNKED, ThreadedUpstream, chunk, json_reply, reply

CHAT = "/v1/chat/completions"
AUTH = {"Authorization": f"Bearer {KEYS['full']}", "Content-Type": "application/json"}
WITHIN_S = 5.0


def body(stream: bool = False) -> bytes:
    return json.dumps({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture
def scripted(start_gateway):
    """A gateway in front of one scripted upstream: call it with the upstream's script."""
    upstreams = []

    def start(script, **settings):
        upstream = ThreadedUpstream(script)
        upstreams.append(upstream)
        gateway = start_gateway({"models": {"m": {"upstreams": [upstream.url]}},
                                 "clients": [{"name": "full", "key_sha256": sha256(KEYS["full"])}], **settings})
        return gateway, upstream.upstream

    yield start
    for upstream in upstreams:
        upstream.close()


def post(gateway, data: bytes) -> tuple[int, bytes]:
    client = RawClient(gateway.port)
    client.send(request("POST", CHAT, AUTH, data))
    answer = client.reply()
    client.close()
    return answer.status, answer.body


# --- item 1: a reply reaches only the request it answers ------------------------------------------

def test_reply_nobody_asked_for_never_reaches_the_next_request(scripted):
    answered = []
    # The start of a reply, 300 ms after alice's: no request on that connection is waiting for it.
    stray = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b'{"for":')

    async def script(writer):
        answered.append(1)
        if len(answered) == 1:
            writer.write(json_reply(b'{"for": "alice"}'))
            asyncio.get_running_loop().call_later(0.3, writer.write, stray)
        else:
            writer.write(json_reply(b'{"for": "bob"}'))
        return True

    gateway, upstream = scripted(script)
    assert post(gateway, body()) == (200, b'{"for": "alice"}')
    # The gateway drops the connection the stray bytes came on (a fixed gateway does at once).
    wait_for(lambda: upstream.closed_by_peer, timeout_s=3.0)  # before its 4 s idle expiry
    assert post(gateway, body()) == (200, b'{"for": "bob"}')
    assert upstream.request_connections == [1, 2], "bob's request went on the connection the stray reply came on"


def test_second_reply_in_the_same_write_is_not_joined_to_the_first(scripted):
    gateway, upstream = scripted(reply(json_reply(b'{"for": "alice"}') + json_reply(b'{"error": "x"}', "401 Unauthorized")))
    assert post(gateway, body()) == (200, b'{"for": "alice"}')
    assert post(gateway, body()) == (200, b'{"for": "alice"}')
    assert upstream.request_connections == [1, 2], "a connection that carried more than its reply was reused"


def test_bytes_after_a_finished_stream_do_not_reach_its_client(scripted):
    events = b"data: {\"choices\": []}\n\ndata: [DONE]\n\n"
    gateway, _ = scripted(reply(HEAD_CHUNKED + chunk(events) + b"0\r\n\r\n"
                                + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"))
    status, received = post(gateway, body(stream=True))
    assert status == 200
    assert received == events


# --- item 2: a connection pooled after a slow client still reads ----------------------------------
# (in-process: tests/gateway/test_upstream_client.py::test_connection_pooled_while_paused_reads_the_next_reply)


# --- item 5: bounded memory -----------------------------------------------------------------------

def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_reply_of_200_mb_is_relayed_with_bounded_memory_and_its_tokens_counted(scripted):
    piece = b"x" * (1 << 20)
    end = b'", "usage": {"prompt_tokens": 7, "completion_tokens": 11}}'
    start = b'{"data": "'
    length = len(start) + 200 * len(piece) + len(end)

    async def script(writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                     % (length, start))
        for _ in range(200):
            writer.write(piece)
            await writer.drain()
        writer.write(end)
        return True

    gateway, _ = scripted(script)
    answer = urllib.request.urlopen(urllib.request.Request(gateway.url + CHAT, data=body(), headers=AUTH), timeout=60)
    received = 0
    while data := answer.read(1 << 20):
        received += len(data)
    assert (answer.status, received) == (200, length)
    assert peak_rss_mb(gateway.proc.pid) < 250
    assert gateway.wait_for_metric("gateway_tokens_total", 11, client="full", model="m", direction="out") == 11
    assert gateway.metric("gateway_tokens_total", client="full", model="m", direction="in") == 7


def test_stream_without_event_ends_is_cut_and_the_gateway_stays_responsive(scripted):
    line = b"data: " + b"x" * 65536  # never a blank line: one event that never ends

    async def script(writer):
        writer.write(HEAD_CHUNKED)
        try:
            for _ in range(350):  # 22 MB
                writer.write(chunk(line))
                await writer.drain()
        except ConnectionError:
            pass
        return False

    gateway, upstream = scripted(script)
    client = RawClient(gateway.port, timeout_s=WITHIN_S)
    client.send(request("POST", CHAT, AUTH, body(stream=True)))
    started = time.monotonic()
    with pytest.raises(ConnectionError):  # the head went out, then the stream is cut
        client.reply()
    assert time.monotonic() - started < WITHIN_S
    probe = time.monotonic()
    urllib.request.urlopen(gateway.url + "/healthz", timeout=WITHIN_S).close()
    assert time.monotonic() - probe < 3, "a probe is answered while the cut stream is cleaned up"
    assert gateway.wait_for_metric("gateway_requests_total", 1, client="full", model="m", status="502") == 1


# --- item 8: an upgrade from the upstream ------------------------------------------------------------

def test_101_from_the_upstream_is_a_clean_502(scripted):
    gateway, _ = scripted(reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                                b"\x81\x05hello"))
    status, received = post(gateway, body())
    assert status == 502
    assert json.loads(received)["error"]["code"] == "upstream_error"
    log = gateway.log.read_text()
    assert "Fatal error" not in log and "Traceback" not in log
