"""The gateway's HTTP/1.1 client against scripted upstreams on 127.0.0.1: keep-alive reuse and
expiry, the ways a reply can end or break, the read-timeout watchdog, backpressure and TLS."""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest
import trustme

from gateway.upstream_client import NotConnected, UpstreamBroken, UpstreamClient, UpstreamTimeout
from tests.gateway.harness import free_port
from tests.gateway.scripted_upstream import HEAD_CHUNKED, ScriptedUpstream, chunk, reply

REQUEST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: up\r\nContent-Length: 2\r\n\r\n{}"


def run(coroutine):
    return asyncio.run(coroutine)


def test_keep_alive_connection_carries_the_next_request():
    async def scenario():
        body = b'{"ok":true}'
        async with ScriptedUpstream(reply(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))) as up:
            client = UpstreamClient(1, 1, idle_s=5)
            for _ in range(3):
                connection = await client.send(up.address, REQUEST)
                assert connection.status == 200 and await connection.read_body() == body
                client.release(connection)
            client.close()
            return up.connections, len(up.requests)

    assert run(scenario()) == (1, 3)


def test_body_without_length_ends_with_the_connection_and_is_not_reused():
    async def scenario():
        async with ScriptedUpstream(reply(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", False)) as up:
            client = UpstreamClient(1, 1, idle_s=5)
            first = await client.send(up.address, REQUEST)
            body = await first.read_body()
            client.release(first)
            second = await client.send(up.address, REQUEST)
            await second.read_body()
            client.close()
            return body, first.content_type, up.connections

    assert run(scenario()) == (b"all of it", "text/plain", 2)


def test_stream_pieces_reach_the_sink_as_they_arrive():
    arrivals: list[tuple[bytes, float]] = []

    async def script(writer):
        writer.write(HEAD_CHUNKED + chunk(b"data: 1\n\n"))
        for piece in (b"data: 2\n\n", b"data: 3\n\n"):
            await asyncio.sleep(0.3)
            writer.write(chunk(piece))
        writer.write(b"0\r\n\r\n")
        return True

    async def scenario():
        async with ScriptedUpstream(script) as up:
            client = UpstreamClient(1, 5, idle_s=5)
            connection = await client.send(up.address, REQUEST)

            def sink(data: bytes) -> bool:
                arrivals.append((data, time.monotonic()))
                return False

            async def drain():
                raise AssertionError("the sink never asked to pause")

            await connection.relay(sink, drain)
            reusable = connection.reusable
            client.release(connection)
            client.close()
            return reusable

    assert run(scenario()) is True
    assert [data for data, _ in arrivals] == [b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"]
    assert arrivals[1][1] - arrivals[0][1] >= 0.15  # relayed when it came, not at the end


def test_informational_replies_before_the_reply_are_skipped():
    async def script(writer):
        for informational in (b"HTTP/1.1 100 Continue\r\n\r\n",
                              b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"):
            writer.write(informational)
            await asyncio.sleep(0.1)  # each in a read of its own
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        return True

    async def scenario():
        async with ScriptedUpstream(script) as up:
            client = UpstreamClient(1, 1, idle_s=5)
            connection = await client.send(up.address, REQUEST)
            result = connection.status, connection.content_type, await connection.read_body(), connection.reusable
            client.close()
            return result

    assert run(scenario()) == (200, "application/json", b"{}", True)


def test_reply_that_is_not_http_is_broken():
    async def scenario():
        async with ScriptedUpstream(reply(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")) as up:
            client = UpstreamClient(1, 1, idle_s=5)
            with pytest.raises(UpstreamBroken, match="not valid HTTP"):
                await client.send(up.address, REQUEST)

    run(scenario())


def test_connection_closed_mid_body_is_broken():
    async def scenario():
        async with ScriptedUpstream(reply(HEAD_CHUNKED + chunk(b"data: 1\n\n"), keep_open=False)) as up:
            client = UpstreamClient(1, 5, idle_s=5)
            connection = await client.send(up.address, REQUEST)
            with pytest.raises(UpstreamBroken, match="closed the connection"):
                await connection.relay(lambda data: False, None)
            assert not connection.reusable

    run(scenario())


def test_read_timeout_counts_from_the_last_data_not_from_the_start():
    async def script(writer):
        writer.write(HEAD_CHUNKED)
        for _ in range(6):  # 0.6 s of trickle, longer than the 0.3 s timeout
            await asyncio.sleep(0.1)
            writer.write(chunk(b"data: x\n\n"))
        await asyncio.sleep(5)  # then silence
        return False

    async def scenario():
        async with ScriptedUpstream(script) as up:
            client = UpstreamClient(1, 0.3, idle_s=5)
            connection = await client.send(up.address, REQUEST)
            pieces = []
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout, match="0.3s"):
                await connection.relay(lambda data: pieces.append(data) and False, None)
            return len(pieces), time.monotonic() - started

    pieces, elapsed = run(scenario())
    assert pieces == 6
    assert 0.8 <= elapsed < 2.0


def test_silent_upstream_times_out_waiting_for_the_head():
    async def script(writer):
        await asyncio.sleep(5)
        return False

    async def scenario():
        async with ScriptedUpstream(script) as up:
            client = UpstreamClient(1, 0.2, idle_s=5)
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout):
                await client.send(up.address, REQUEST)
            return time.monotonic() - started

    assert 0.15 <= run(scenario()) < 1.0


def test_refused_connection_is_not_connected():
    async def scenario():
        client = UpstreamClient(1, 1, idle_s=5)
        with pytest.raises(NotConnected, match="cannot connect"):
            await client.send(("127.0.0.1", free_port(), None), REQUEST)

    run(scenario())


def test_idle_connection_is_closed_after_idle_s_and_a_new_one_opened():
    async def scenario():
        async with ScriptedUpstream(reply(b"HTTP/1.1 204 No Content\r\n\r\n")) as up:
            client = UpstreamClient(1, 1, idle_s=0.2)
            connection = await client.send(up.address, REQUEST)
            await connection.read_body()
            client.release(connection)
            await asyncio.sleep(1.0)  # idle_s and then some, on a loaded machine
            closed_by_us = up.closed_by_peer
            connection = await client.send(up.address, REQUEST)
            assert connection.status == 204
            client.close()
            return closed_by_us, up.connections

    assert run(scenario()) == (1, 2)


def test_connection_the_upstream_closed_while_idle_is_not_reused():
    async def scenario():
        async with ScriptedUpstream(reply(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", keep_open=False)) as up:
            client = UpstreamClient(1, 1, idle_s=5)
            for _ in range(2):
                connection = await client.send(up.address, REQUEST)
                await connection.read_body()
                client.release(connection)  # kept: the reply said nothing about closing
                await asyncio.sleep(0.1)    # ...but the upstream closes it now
            client.close()
            return up.connections

    assert run(scenario()) == 2


def test_full_sink_pauses_reading_until_drained():
    sent = 50

    async def script(writer):
        writer.write(HEAD_CHUNKED)
        for index in range(sent):
            writer.write(chunk(b"data: %d\n\n" % index))
            await writer.drain()
            await asyncio.sleep(0.002)
        writer.write(b"0\r\n\r\n")
        return True

    async def scenario():
        async with ScriptedUpstream(script) as up:
            client = UpstreamClient(1, 5, idle_s=5)
            connection = await client.send(up.address, REQUEST)
            received = []
            drains = 0
            draining = False
            delivered_while_draining = 0

            def sink(data: bytes) -> bool:
                nonlocal delivered_while_draining
                received.append(data)
                delivered_while_draining += draining
                return True  # as if the client's buffer were always full

            async def drain():
                nonlocal drains, draining
                drains += 1
                draining = True
                await asyncio.sleep(0.02)  # the upstream keeps sending meanwhile
                draining = False

            await connection.relay(sink, drain)
            client.close()
            return b"".join(received), drains, delivered_while_draining

    body, drains, delivered_while_draining = run(scenario())
    assert body == b"".join(b"data: %d\n\n" % index for index in range(sent))
    assert drains >= 5 and delivered_while_draining == 0


def test_connection_pooled_while_paused_reads_the_next_reply():
    whole_stream = HEAD_CHUNKED + chunk(b"data: 1\n\n") + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"

    async def no_room_yet():
        await asyncio.sleep(0)

    async def scenario():
        # The whole stream comes in one read, and the client's buffer is full at its last piece:
        # reading pauses, and the reply is complete while it is paused.
        async with ScriptedUpstream(reply(whole_stream)) as up:
            client = UpstreamClient(1, 2, idle_s=5)
            first = await client.send(up.address, REQUEST)
            await first.relay(lambda data: True, no_room_yet)
            client.release(first)
            started = time.monotonic()
            second = await client.send(up.address, REQUEST)
            pieces: list[bytes] = []
            await second.relay(lambda data: pieces.append(data) and False, no_room_yet)
            client.close()
            return second is first, time.monotonic() - started, b"".join(pieces)

    reused, elapsed, received = run(scenario())
    assert reused and received == b"data: 1\n\ndata: [DONE]\n\n"
    assert elapsed < 1.5, "the pooled connection did not read the next reply"


def test_bytes_on_an_idle_connection_discard_it():
    async def script(writer):
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await asyncio.sleep(0.1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")  # for no request
        return True

    async def scenario():
        async with ScriptedUpstream(script) as up:
            client = UpstreamClient(1, 1, idle_s=5)
            connection = await client.send(up.address, REQUEST)
            await connection.read_body()
            client.release(connection)
            await asyncio.sleep(0.6)  # well after the stray bytes came
            second = await client.send(up.address, REQUEST)
            status = second.status
            client.close()
            return status, up.request_connections

    assert run(scenario()) == (204, [1, 2])


# --- https upstreams -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate_authority():
    return trustme.CA()


async def tls_upstream(ca: trustme.CA, name: str):
    """A scripted upstream that serves TLS with a certificate for `name` from `ca`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    upstream = ScriptedUpstream(reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    upstream.server = await asyncio.start_server(upstream._serve, "127.0.0.1", 0, ssl=context)
    upstream.address = ("127.0.0.1", upstream.server.sockets[0].getsockname()[1])
    return upstream


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_https_upstream_certificate_is_checked_against_the_url_name(certificate_authority):
    async def scenario():
        upstream = await tls_upstream(certificate_authority, "vllm.models.svc")
        try:
            client = UpstreamClient(1, 1, idle_s=5, tls=trusting(certificate_authority))
            connection = await client.send((*upstream.address, "vllm.models.svc"), REQUEST)
            body = await connection.read_body()
            with pytest.raises(NotConnected, match="certificate"):
                await client.send((*upstream.address, "other.models.svc"), REQUEST)
            untrusting = UpstreamClient(1, 1, idle_s=5)  # the system's CAs do not know this one
            with pytest.raises(NotConnected, match="certificate"):
                await untrusting.send((*upstream.address, "vllm.models.svc"), REQUEST)
            client.close()
            return body, upstream.requests
        finally:
            upstream.server.close()

    body, requests = run(scenario())
    assert body == b"ok" and len(requests) == 1, "only the verified connection carried the request"
