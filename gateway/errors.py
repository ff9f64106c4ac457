"""OpenAI-shaped error replies: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import json
from http import HTTPStatus

from aiohttp import web

# In place of aiohttp's `aiohttp/<version>`: a version tells an attacker which advisories apply.
SERVER = "llm-edge-gateway"


def _body(message: str, error_type: str, code: str, param: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": error_type, "param": param, "code": code}}).encode()


def error_response(status: int, message: str, error_type: str, code: str,
                   headers: dict[str, str] | None = None, param: str | None = None) -> web.Response:
    return web.Response(status=status, body=_body(message, error_type, code, param), content_type="application/json",
                        headers={"Server": SERVER, **(headers or {})})


def raw_reply(status: int, message: str, code: str, request_id: str, headers: str = "") -> bytes:
    """A whole error reply as bytes, for a connection that has no aiohttp request (it closes after)."""
    body = _body(message, "invalid_request_error" if status < 500 else "server_error", code)
    return (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nServer: {SERVER}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
            f"X-Request-Id: {request_id}\r\n{headers}\r\n").encode("ascii") + body


def unauthorized() -> web.Response:
    return error_response(401, "Missing or invalid API key: send it as 'Authorization: Bearer <key>'.",
                          "invalid_request_error", "invalid_api_key")


def bad_request(message: str, code: str = "invalid_request", param: str | None = None) -> web.Response:
    return error_response(400, message, "invalid_request_error", code, param=param)


def forbidden_model(model: str) -> web.Response:
    return error_response(403, f"This API key may not use the model '{model}'.", "permission_error",
                          "model_not_allowed")


def unknown_model(model: str) -> web.Response:
    return error_response(404, f"The model '{model}' does not exist on this gateway; GET /v1/models lists "
                          "the models your key may use.", "invalid_request_error", "model_not_found")


def not_found(path: str) -> web.Response:
    return error_response(404, f"No such endpoint: {path}", "invalid_request_error", "unknown_url")


def method_not_allowed(allowed: str) -> web.Response:
    return error_response(405, f"This endpoint takes only {allowed}.", "invalid_request_error", "method_not_allowed",
                          headers={"Allow": allowed})


def malformed_request(reason: str) -> web.Response:
    return error_response(400, f"Malformed HTTP request ({reason}): send one HTTP/1.1 request with valid "
                          "headers and framing.", "invalid_request_error", "malformed_request")


def http_version_not_supported() -> web.Response:
    return error_response(505, "Only HTTP/1.0 and HTTP/1.1 are spoken here.", "invalid_request_error",
                          "http_version_not_supported")


def internal_error() -> web.Response:
    return error_response(500, "The gateway failed while handling this request.", "server_error", "internal_error")


def request_timeout(timeout_s: float) -> web.Response:
    return error_response(408, f"The request body did not arrive within {timeout_s:g}s.",
                          "invalid_request_error", "request_timeout")


def too_large(limit: int) -> web.Response:
    return error_response(413, f"Request body larger than the gateway's limit of {limit} bytes.",
                          "invalid_request_error", "request_too_large")


def rate_limited(which: str, retry_after: int) -> web.Response:
    return error_response(429, f"Rate limit reached for this API key ({which}); retry after {retry_after}s.",
                          "rate_limit_error", "rate_limit_exceeded", headers={"Retry-After": str(retry_after)})


def upstream_unreachable(model: str) -> web.Response:
    return error_response(502, f"No upstream of model '{model}' could be reached.", "upstream_error",
                          "upstream_unreachable")


def upstream_auth_failed(model: str) -> web.Response:
    return error_response(502, f"The upstream of model '{model}' refused the gateway's own credentials; this is "
                          "the gateway's configuration, not your key.", "upstream_error", "upstream_auth_failed")


def upstream_failed(model: str) -> web.Response:
    return error_response(502, f"The upstream of model '{model}' failed while answering.", "upstream_error",
                          "upstream_error")


def no_upstream(model: str) -> web.Response:
    return error_response(503, f"Model '{model}' has no upstream address right now (DNS name not resolved).",
                          "upstream_error", "no_upstream", headers={"Retry-After": "5"})


def edge_timeout(model: str, seconds: float) -> web.Response:
    return error_response(504, f"Model '{model}' took longer than {seconds:g}s to answer, and Cloudflare gives up on a reply "
                          "that has not started after about 100 s: send the request with \"stream\": true, whose events "
                          "keep the reply alive however long it takes.", "upstream_error", "edge_timeout")


def upstream_timeout(model: str) -> web.Response:
    return error_response(504, f"The upstream of model '{model}' did not answer in time.", "upstream_error",
                          "upstream_timeout")
