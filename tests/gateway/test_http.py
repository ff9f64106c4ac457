"""HTTP around the proxied API: request ids, every route and its methods, CORS Vary, the upstream
headers passed on, and upstream error bodies that must not carry the upstream's key."""

from __future__ import annotations

import json

import pytest

from gateway.routes import PROXIED
from tests.gateway.harness import KEYS, ORIGIN, UPSTREAM_KEY, raw, wait_for
from tests.gateway.raw_client import RawClient, request
from tests.gateway.scripted_upstream import reply

CHAT = "/v1/chat/completions"
AUTH = {"Authorization": f"Bearer {KEYS['full']}", "Content-Type": "application/json"}
BODY = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode()


def access_lines(gateway) -> list[dict]:
    return [line for line in map(json.loads, filter(None, gateway.log.read_text().splitlines()))
            if line.get("logger") == "gateway.access"]


# --- issue 14, item 5: request ids --------------------------------------------------------------

def test_a_clients_request_id_is_forwarded_returned_and_logged(gateway, stub):
    status, headers, _ = raw(gateway, CHAT, BODY, headers={**AUTH, "X-Request-Id": "trace-42.a:b_c"})
    assert status == 200
    assert headers["X-Request-Id"] == "trace-42.a:b_c"
    assert stub.state.seen[-1].headers["X-Request-Id"] == "trace-42.a:b_c"
    assert wait_for(lambda: [line for line in access_lines(gateway) if line["request_id"] == "trace-42.a:b_c"])


@pytest.mark.parametrize("offered", [None, "sk-test-full", "x" * 129, "two words", "é"])
def test_a_request_without_a_usable_id_gets_one_made_here(gateway, stub, offered):
    headers = {**AUTH, **({"X-Request-Id": offered} if offered is not None else {})}
    status, reply_headers, _ = raw(gateway, CHAT, BODY, headers=headers)
    assert status == 200
    made = reply_headers["X-Request-Id"]
    assert made != offered and 16 <= len(made) <= 64
    assert stub.state.seen[-1].headers["X-Request-Id"] == made


@pytest.mark.parametrize("path, body, headers", [
    (CHAT, BODY, {}),  # 401
    (CHAT, b"{", AUTH),  # 400
    ("/v1/files", None, AUTH),  # 404
    ("/readyz", None, {}),
    (CHAT, None, {**AUTH, "Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"}),  # OPTIONS 403
])
def test_every_reply_carries_a_request_id(gateway, path, body, headers):
    method = "OPTIONS" if "Origin" in headers else None
    _, reply_headers, _ = raw(gateway, path, body, method=method, headers={**headers, "X-Request-Id": "r-1"})
    assert reply_headers["X-Request-Id"] == "r-1"


def test_a_malformed_request_gets_a_request_id_too(gateway):
    client = RawClient(gateway.port)
    client.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n")
    answer = client.reply()
    assert answer.status == 400 and answer.headers["x-request-id"]


# --- item 4: every route is proxied and checked; others stay 404 ------------------------------------

@pytest.mark.parametrize("path", sorted(PROXIED))
def test_every_route_checks_the_key_and_the_model_before_the_upstream(gateway, stub, path):
    if path.startswith("/v1/audio/"):
        body, content_type = (b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nother\r\n--b--\r\n',
                              "multipart/form-data; boundary=b")
    else:
        body, content_type = b'{"model": "other"}', "application/json"
    assert raw(gateway, path, body, headers={"Content-Type": content_type})[0] == 401
    status, _, refused = raw(gateway, path, body, headers={"Content-Type": content_type,
                                                           "Authorization": f"Bearer {KEYS['chat-only']}"})
    assert status == 403 and json.loads(refused)["error"]["code"] == "model_not_allowed"
    assert stub.state.seen == []


@pytest.mark.parametrize("path", ["/v1/files", "/invocations", "/v1/messages", "/v2/embed", "/v1/responses/resp_1",
                                  "/v1/completions/render", "/inference/v1/generate", "/metrics", "/version"])
def test_paths_the_gateway_does_not_serve_stay_404(gateway, stub, path):
    status, _, body = raw(gateway, path, b'{"model": "chat"}', headers=AUTH)
    assert status == 404 and json.loads(body)["error"]["code"] == "unknown_url"
    assert stub.state.seen == []


# --- item 7: /health, 405, OPTIONS, Vary, upstream headers -------------------------------------------

def test_health_answers_like_vllms(gateway):
    assert raw(gateway, "/health")[0] == 200


@pytest.mark.parametrize("path, method, allowed", [
    (CHAT, "GET", "OPTIONS, POST"), ("/v1/rerank", "PUT", "OPTIONS, POST"), ("/v1/models", "POST", "GET, HEAD, OPTIONS"),
    ("/health", "POST", "GET, HEAD, OPTIONS"),
])
def test_a_wrong_method_is_405_with_allow(gateway, path, method, allowed):
    status, headers, body = raw(gateway, path, b"{}" if method != "GET" else None, method=method, headers=AUTH)
    assert status == 405
    assert headers["Allow"] == allowed
    assert json.loads(body)["error"]["code"] == "method_not_allowed"


def test_options_without_origin_is_answered_with_allow(gateway, stub):
    status, headers, _ = raw(gateway, CHAT, method="OPTIONS")
    assert status == 204
    assert headers["Allow"] == "OPTIONS, POST"
    assert "Access-Control-Allow-Origin" not in headers
    assert stub.state.seen == []


def test_preflight_varies_on_what_it_echoes(gateway):
    status, headers, _ = raw(gateway, CHAT, method="OPTIONS", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-stainless-os"})
    assert status == 204
    assert headers["Vary"] == "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
    assert raw(gateway, "/v1/models", headers={**AUTH, "Origin": ORIGIN})[1]["Vary"] == "Origin"


def test_upstream_headers_on_the_allowlist_pass_and_no_others(gateway, stub):
    stub.state.behaviour.headers = {"Retry-After": "7", "Content-Language": "en", "Set-Cookie": "s=1",
                                    "Vary": "Accept-Encoding", "X-Upstream-Secret": "nope", "Access-Control-Allow-Origin": "*"}
    for stream in (False, True):
        status, headers, _ = raw(gateway, CHAT, json.dumps({"model": "chat", "stream": stream}).encode(), headers=AUTH)
        assert status == 200
        assert headers["Retry-After"] == "7" and headers["Content-Language"] == "en"
        assert headers["Server"] == "llm-edge-gateway"
        assert not {"set-cookie", "x-upstream-secret", "access-control-allow-origin"} & {name.lower() for name in headers}
        assert headers["Vary"] == "Origin", "the gateway's own (cors_origins), not the upstream's"


@pytest.mark.parametrize("content_type", [b"text/plain; charset=utf-8", b"application/json; charset=utf-8", None])
def test_content_type_is_the_upstreams(scripted_gateway, content_type):
    head = b"Content-Type: %b\r\n" % content_type if content_type else b""
    gateway = scripted_gateway(reply(b"HTTP/1.1 200 OK\r\n%bContent-Length: 2\r\n\r\nok" % head))
    _, headers, body = raw(gateway, CHAT, b'{"model": "m"}', headers=AUTH)
    assert body == b"ok"
    # None sent: RFC 9110 section 8.3 lets a recipient assume application/octet-stream, which aiohttp says.
    assert headers["Content-Type"] == (content_type or b"application/octet-stream").decode()


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "text/plain", None])
def test_the_request_goes_upstream_with_the_clients_content_type(gateway, stub, content_type):
    """vLLM refuses all but application/json on its JSON routes; a gateway that sent its own would hide that."""
    headers = {"Authorization": AUTH["Authorization"], **({"Content-Type": content_type} if content_type else {})}
    client = RawClient(gateway.port)  # urllib would give a body without one a form Content-Type
    client.send(request("POST", CHAT, headers, BODY))
    assert client.reply().status == 200
    client.close()
    assert stub.state.seen[-1].headers.get("Content-Type") == content_type


# --- item 8: an upstream error never shows the client the upstream's key -----------------------------

@pytest.mark.parametrize("status", [401, 403])
def test_upstream_refusing_the_gateways_key_is_a_502_without_its_body(gateway, stub, status):
    stub.state.behaviour.status = status
    stub.state.behaviour.echo_authorization = True
    got, _, body = raw(gateway, CHAT, BODY, headers=AUTH)
    assert got == 502
    assert json.loads(body)["error"]["code"] == "upstream_auth_failed"
    assert UPSTREAM_KEY not in body.decode()


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_error_bodies_are_relayed_without_the_upstream_key(gateway, stub, stream):
    stub.state.behaviour.status = 400
    stub.state.behaviour.echo_authorization = True
    got, _, body = raw(gateway, CHAT, json.dumps({"model": "chat", "stream": stream}).encode(), headers=AUTH)
    assert got == 400
    assert UPSTREAM_KEY not in body.decode()
    assert "stub failure" in json.loads(body)["error"]["message"]


def test_a_chunked_upstream_error_is_scrubbed_too(scripted_gateway):
    echoed = f'{{"error": {{"message": "bad key Bearer {UPSTREAM_KEY}"}}}}'.encode()
    gateway = scripted_gateway(reply(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%b\r\n0\r\n\r\n" % (len(echoed), echoed)))
    client = RawClient(gateway.port)
    client.send(request("POST", CHAT, AUTH, b'{"model": "m"}'))
    answer = client.reply()
    assert answer.status == 500
    assert UPSTREAM_KEY.encode() not in answer.body and b"bad key Bearer" in answer.body
