"""The gateway's log: one JSON object per line on stdout, and one access line per request.

Nothing a client sends is written as it came except a request id that passed a strict check:
not keys, not headers, not paths, not malformed request lines (gateway/connection.py answers
those itself instead of letting aiohttp log them). Client and model names come from the config.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
import sys
import time

from aiohttp import web

from .metrics import UNKNOWN, Outcome

# What the request handlers learnt about a request (client, model, tokens), for its access line.
OUTCOME = web.RequestKey("outcome", Outcome)
# Kubelet probes every few seconds would drown the requests that matter.
PROBE_PATHS = ("/healthz", "/readyz")
_METHODS = frozenset(("GET", "POST", "OPTIONS", "HEAD", "PUT", "PATCH", "DELETE"))
# A client's own X-Request-Id is kept when it is a plain token; one that looks like an API key
# (sk-...) is replaced, so that a key pasted into the wrong header does not reach the log.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_log = logging.getLogger("gateway.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


class RequestIds:
    """The client's X-Request-Id if it is a plain token, else a new one unique to this process."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def take(self, offered: str | None) -> str:
        if offered and _CLIENT_REQUEST_ID.fullmatch(offered) and not offered[:3].lower() == "sk-":
            return offered
        return f"{self._prefix}-{next(self._counter):x}"


def log_request(request_id: str, method: str, status: int, duration_s: float, outcome: Outcome | None) -> None:
    """The access line of one request; `outcome` is None for a request no handler saw (malformed)."""
    if outcome is None:
        outcome = Outcome()
    access_log.info("request", extra={"fields": {
        "request_id": request_id,
        "method": method if method in _METHODS else UNKNOWN,
        "route": outcome.route,
        "status": status,
        "duration_ms": round(duration_s * 1000, 3),
        "client": outcome.client,
        "model": outcome.model,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
    }})
