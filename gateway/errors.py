"""OpenAI-shaped error replies: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import json

from aiohttp import web


def error_response(status: int, message: str, error_type: str, code: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json",
                        headers=headers)


def unauthorized() -> web.Response:
    return error_response(401, "Missing or invalid API key: send it as 'Authorization: Bearer <key>'.",
                          "invalid_request_error", "invalid_api_key")


def bad_request(message: str, code: str = "invalid_request") -> web.Response:
    return error_response(400, message, "invalid_request_error", code)


def forbidden_model(model: str) -> web.Response:
    return error_response(403, f"This API key may not use the model '{model}'.", "permission_error",
                          "model_not_allowed")


def unknown_model(model: str) -> web.Response:
    return error_response(404, f"The model '{model}' does not exist on this gateway; GET /v1/models lists "
                          "the models your key may use.", "invalid_request_error", "model_not_found")


def not_found(path: str) -> web.Response:
    return error_response(404, f"No such endpoint: {path}", "invalid_request_error", "unknown_url")


def too_large(limit: int) -> web.Response:
    return error_response(413, f"Request body larger than the gateway's limit of {limit} bytes.",
                          "invalid_request_error", "request_too_large")


def rate_limited(which: str, retry_after: int) -> web.Response:
    return error_response(429, f"Rate limit reached for this API key ({which}); retry after {retry_after}s.",
                          "rate_limit_error", "rate_limit_exceeded", headers={"Retry-After": str(retry_after)})


def upstream_unreachable(model: str) -> web.Response:
    return error_response(502, f"No upstream of model '{model}' could be reached.", "upstream_error",
                          "upstream_unreachable")


def upstream_failed(model: str) -> web.Response:
    return error_response(502, f"The upstream of model '{model}' failed while answering.", "upstream_error",
                          "upstream_error")


def no_upstream(model: str) -> web.Response:
    return error_response(503, f"Model '{model}' has no upstream address right now (DNS name not resolved).",
                          "upstream_error", "no_upstream", headers={"Retry-After": "5"})


def upstream_timeout(model: str) -> web.Response:
    return error_response(504, f"The upstream of model '{model}' did not answer in time.", "upstream_error",
                          "upstream_timeout")
