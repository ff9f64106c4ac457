"""The gateway against clients on raw sockets: slow or silent heads and bodies, clients that stop
reading, too many connections, bytes no SDK sends, and what of it reaches the log."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import pytest
import yaml

from tests.gateway.harness import BASE_ENV, KEYS, ROOT, GatewayProcess, base_config, sha256, wait_for
from tests.gateway.raw_client import RawClient, request

CHAT = "/v1/chat/completions"
AUTH = {"Authorization": f"Bearer {KEYS['full']}", "Content-Type": "application/json"}
BODY = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode()
# Short client timeouts, so that each is seen to act within a test's bounds.
# Keep-alive longer than the head timeout: aiohttp's keep-alive timer also runs before the first request.
TIMEOUTS = {"client_header_timeout_s": 0.3, "client_body_timeout_s": 0.3, "client_keepalive_timeout_s": 1.0,
            "client_write_timeout_s": 0.3}
# Generous: the machine is shared and noisy; a fixed gateway acts within a second or two.
WITHIN_S = 5.0


@pytest.fixture(scope="module")
def hostile(stub, tmp_path_factory):
    r = stub.replicas
    config = {**base_config([r["c0"].url, r["c1"].url, r["c2"].url], [r["o0"].url]), **TIMEOUTS}
    process = GatewayProcess(config, tmp_path_factory.mktemp("hostile"), BASE_ENV)
    yield process
    process.stop()


def log_lines(gateway: GatewayProcess) -> list[dict]:
    """Every line of the gateway's log, each of which must be one JSON object."""
    return [json.loads(line) for line in gateway.log.read_text().splitlines()]


# --- item 4: client timeouts and the connection limit ------------------------------------------

def test_silent_and_slowloris_connections_are_cut_at_the_header_timeout(hostile):
    silent = [RawClient(hostile.port) for _ in range(3)]
    slow = RawClient(hostile.port, timeout_s=0.1)
    slow.send(b"POST /v1/chat/completions HTTP/1.1\r\n")
    started = time.monotonic()
    reply = None
    while reply is None and time.monotonic() - started < WITHIN_S:
        try:
            slow.send(b"X")  # one byte of a header line every 0.1 s: the head never ends
            reply = slow.reply()
        except TimeoutError:
            pass
    assert reply is not None and reply.status == 408, "a head trickling in byte by byte was never cut"
    for client in silent:
        client.sock.settimeout(WITHIN_S)
        assert client.reply().status == 408
        assert client.closed_within(WITHIN_S)


def test_body_that_stops_arriving_gets_408(hostile, stub):
    client = RawClient(hostile.port)
    client.send(request("POST", CHAT, AUTH, BODY[:10], length=len(BODY)))
    reply = client.reply()
    assert reply.status == 408
    assert json.loads(reply.body)["error"]["code"] == "request_timeout"
    assert stub.state.seen == []


def test_idle_keep_alive_connection_is_closed(hostile):
    client = RawClient(hostile.port)
    client.send(request("GET", "/v1/models", AUTH))
    assert client.reply().status == 200
    assert client.closed_within(WITHIN_S)


def test_client_that_stops_reading_is_cut_and_its_upstream_request_cancelled(hostile, stub):
    stub.state.behaviour.chunks = 1_000_000  # far more than every buffer on the way holds
    client = RawClient(hostile.port, receive_buffer=4096)
    stream = json.dumps({"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    client.send(request("POST", CHAT, AUTH, stream))
    # The client reads nothing from here on.
    assert wait_for(lambda: stub.state.cancelled, timeout_s=20), "the upstream request was never cancelled"
    assert hostile.wait_for_metric("gateway_requests_total", 1, client="full", model="chat", status="499") >= 1
    client.close()


def test_connections_beyond_the_limit_get_a_503_not_a_reset(stub, start_gateway):
    r = stub.replicas
    limit = 50
    # 256 open files fit 50 connections (and their upstream connections), not the 80 tried here.
    gateway = start_gateway({**base_config([r["c0"].url], [r["o0"].url]), "client_max_connections": limit},
                            open_files=256)
    silent = [RawClient(gateway.port) for _ in range(limit)]
    assert gateway.wait_for_metric("gateway_client_connections", limit, timeout_s=WITHIN_S) == limit
    refused = []
    for _ in range(30):
        client = RawClient(gateway.port)
        client.send(request("GET", "/v1/models", AUTH))
        refused.append(client.reply())
        client.close()
    assert {reply.status for reply in refused} == {503}
    assert json.loads(refused[0].body)["error"]["code"] == "too_many_connections"
    assert refused[0].headers["retry-after"] == "1"
    assert gateway.metric("gateway_connections_refused_total") == 30
    for client in silent:
        client.close()
    assert gateway.wait_for_metric("gateway_client_connections", 0, timeout_s=WITHIN_S) == 0
    client = RawClient(gateway.port)
    client.send(request("POST", CHAT, AUTH, BODY))
    assert client.reply().status == 200


def test_connection_limit_that_the_open_file_limit_cannot_hold_stops_start_up(tmp_path):
    config = {**base_config(["http://127.0.0.1:9"], ["http://127.0.0.1:9"]), "client_max_connections": 200}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "gateway", "--config", str(path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=30, env={**os.environ, **BASE_ENV},
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "config error: client_max_connections: 200 connections need 528 open files, and this process may open "
        "at most 256 (its hard limit): lower client_max_connections to 64 or raise the container's nofile limit"]


# --- item 6: client input never gives a 500 ----------------------------------------------------

def test_key_with_bytes_that_are_not_text_is_401(hostile, stub):
    client = RawClient(hostile.port)
    client.send(request("POST", CHAT, {"Content-Type": "application/json"}, BODY).replace(
        b"Host: gateway", b"Host: gateway\r\nAuthorization: Bearer sk-\xff\xfe"))
    reply = client.reply()
    assert reply.status == 401
    assert stub.state.seen == []
    assert "Traceback" not in hostile.log.read_text()


def test_deeply_nested_json_is_400(hostile, stub):
    nested = b'{"model": "chat", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    client = RawClient(hostile.port)
    client.send(request("POST", CHAT, AUTH, nested))
    reply = client.reply()
    assert reply.status == 400
    assert json.loads(reply.body)["error"]["code"] == "invalid_json"
    assert stub.state.seen == []
    assert "Traceback" not in hostile.log.read_text()


def test_preflight_asking_for_header_names_that_are_not_text_is_no_500(hostile):
    client = RawClient(hostile.port)
    client.send(b"OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nOrigin: https://app.example.com\r\n"
                b"Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: x-\xff\r\n\r\n")
    reply = client.reply()
    assert reply.status == 204
    assert "access-control-allow-headers" not in reply.headers


# --- item 7: no key material in the log; one JSON access line per request ------------------------

MALFORMED = [
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization : Bearer KEY\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nX-Note: a\r\n Authorization: Bearer KEY\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\nHost: gateway\nAuthorization: Bearer KEY\n\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer KEY\x01\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nX-Long: " + b"x" * 9000 + b" KEY\r\n\r\n",
    b"POST /v1/KEY\x00 HTTP/1.1\r\nHost: gateway\r\n\r\n",
]


@pytest.mark.parametrize("raw", MALFORMED, ids=["space-before-colon", "obs-fold", "bare-lf", "control-char",
                                                "long-header", "nul-in-path"])
def test_malformed_request_with_a_key_gets_400_and_leaves_no_key_in_the_log(hostile, raw):
    key = KEYS["full"]
    client = RawClient(hostile.port)
    client.send(raw.replace(b"KEY", key.encode()))
    reply = client.reply()
    assert reply.status == 400
    assert wait_for(lambda: [line for line in log_lines(hostile) if line.get("status") == 400])
    text = hostile.log.read_text()
    assert key not in text and sha256(key) not in text
    assert "Traceback" not in text
    assert json.loads(reply.body)["error"]["code"] == "malformed_request"
    assert reply.headers["server"] == "llm-edge-gateway"
    assert client.closed_within(WITHIN_S)


def test_malformed_request_to_the_metrics_port_leaves_no_key_in_the_log(hostile):
    key = KEYS["full"]
    client = RawClient(hostile.metrics_port)
    client.send(MALFORMED[0].replace(b"KEY", key.encode()))
    assert client.reply().status == 400
    assert wait_for(lambda: "Error handling request" in hostile.log.read_text())
    assert key not in hostile.log.read_text()


def test_each_request_gets_one_json_access_line(hostile):
    client = RawClient(hostile.port)
    for request_id in ("trace-42", "sk-test-full", None):
        headers = {**AUTH, **({"X-Request-Id": request_id} if request_id else {})}
        client.send(request("POST", CHAT, headers, BODY))
        assert client.reply().status == 200
    client.send(request("GET", "/healthz"))
    assert client.reply().status == 200

    def access_lines():
        lines = [line for line in log_lines(hostile) if line["logger"] == "gateway.access" and line["model"] == "chat"]
        return lines if len(lines) >= 3 else None

    lines = wait_for(access_lines)
    assert lines, "no access lines"
    first, pasted_key, generated = lines[-3:]
    assert first["request_id"] == "trace-42"
    assert {k: first[k] for k in ("method", "route", "status", "client", "model", "prompt_tokens",
                                  "completion_tokens")} == {
        "method": "POST", "route": CHAT, "status": 200, "client": "full", "model": "chat",
        "prompt_tokens": 5, "completion_tokens": 2}
    assert first["duration_ms"] > 0
    assert pasted_key["request_id"] != "sk-test-full" and generated["request_id"]
    assert len({first["request_id"], pasted_key["request_id"], generated["request_id"]}) == 3
    assert not [line for line in log_lines(hostile) if line.get("route") == "/healthz"], "probes are not logged"


# --- item 8: the smaller ones ---------------------------------------------------------------------

def test_server_header_names_no_version(hostile):
    client = RawClient(hostile.port)
    client.send(request("GET", "/v1/models", AUTH))
    assert client.reply().headers["server"] == "llm-edge-gateway"


def test_http_2_request_line_gets_505(hostile, stub):
    client = RawClient(hostile.port)
    client.send(request("POST", CHAT, AUTH, BODY).replace(b"HTTP/1.1", b"HTTP/2.0", 1))
    reply = client.reply()
    assert reply.status == 505
    assert stub.state.seen == []


def test_100_continue_comes_only_after_the_key_is_checked(hostile, stub):
    expect = {"Expect": "100-continue", "Content-Type": "application/json"}
    client = RawClient(hostile.port, timeout_s=2)
    client.send(request("POST", CHAT, {**expect, "Authorization": "Bearer sk-wrong"}, length=len(BODY)))
    reply = client.reply()
    assert (reply.informational, reply.status) == ([], 401)
    assert reply.headers["connection"] == "close"  # the body that was never sent cannot be skipped

    client = RawClient(hostile.port)
    client.send(request("POST", CHAT, {**expect, "Authorization": f"Bearer {KEYS['full']}"}, length=len(BODY)))
    assert client.next_informational() == 100
    client.send(BODY)
    assert client.reply().status == 200
