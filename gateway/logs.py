"""The gateway's log: one JSON object per line on stdout, and one access line per request.

Nothing a client sends is written as it came except a request id that passed a strict check:
not keys, not headers, not paths, not malformed request lines (gateway/connection.py answers
those itself instead of letting aiohttp log them). Client and model names come from the config.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import secrets
import sys
import time
from typing import TextIO

from aiohttp import web

from .metrics import UNKNOWN, Outcome

# What the request handlers learnt about a request (client, model, tokens), for its access line.
OUTCOME = web.RequestKey("outcome", Outcome)
# The request's id (RequestIds): in its reply's X-Request-Id, sent upstream, in its access line.
REQUEST_ID = web.RequestKey("request_id", str)
# Kubelet probes every few seconds would drown the requests that matter (/health is vLLM's name,
# which clients such as guidellm check before they start).
PROBE_PATHS = ("/healthz", "/readyz", "/health")
_METHODS = frozenset(("GET", "POST", "OPTIONS", "HEAD", "PUT", "PATCH", "DELETE"))
# A client's own X-Request-Id is kept when it is a plain token; one that looks like an API key
# (sk-...) is replaced, so that a key pasted into the wrong header does not reach the log.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


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
    # The API port answers malformed requests itself; the metrics port is aiohttp's own, and
    # aiohttp's error lines quote the request's raw bytes: only their first words are kept.
    logging.getLogger("aiohttp.server").addFilter(_without_request_bytes)


def _without_request_bytes(record: logging.LogRecord) -> bool:
    record.msg = record.msg.split(" from ", 1)[0] if isinstance(record.msg, str) else "error"
    record.args = ()
    record.exc_info = None
    record.exc_text = None
    return True


class RequestIds:
    """The client's X-Request-Id if it is a plain token, else a new one.

    vLLM makes a client's id its completion id (`chatcmpl-<id>`), so a made one must be unique
    across every replica: 64 random bits per process, then a counter.
    """

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def take(self, offered: str | None) -> str:
        if offered and _CLIENT_REQUEST_ID.fullmatch(offered) and not offered[:3].lower() == "sk-":
            return offered
        return f"{self._prefix}-{next(self._counter):x}"


class AccessLog:
    """One JSON line per request, in the shape JsonFormatter gives every other line.

    Written without the logging module and json.dumps, and once per event-loop pass: those cost
    tens of microseconds a line here, a tenth of a request's whole cost. Every value is a number,
    one of a fixed set, a checked request id, or a config name (encoded once, as JSON).
    """

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream or sys.stdout
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""
        self._names: dict[str, str] = {}

    def write(self, request_id: str, method: str, status: int, duration_s: float, outcome: Outcome | None) -> None:
        """The line of one request; `outcome` is None for a request no handler saw (malformed)."""
        if outcome is None:
            outcome = Outcome()
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        if not self._lines:
            asyncio.get_running_loop().call_soon(self.flush)
        self._lines.append(
            f'{{"time": "{self._stamp}.{int((now - second) * 1000):03d}Z", "level": "info", "logger": "gateway.access", '
            f'"message": "request", "request_id": "{request_id}", "method": "{method if method in _METHODS else UNKNOWN}", '
            f'"route": "{outcome.route}", "status": {status}, "duration_ms": {duration_s * 1000:.3f}, '
            f'"client": {self._name(outcome.client)}, "model": {self._name(outcome.model)}, '
            f'"prompt_tokens": {outcome.prompt_tokens}, "completion_tokens": {outcome.completion_tokens}}}\n')

    def flush(self) -> None:
        if self._lines:
            self._stream.write("".join(self._lines))
            self._stream.flush()
            self._lines.clear()

    def _name(self, name: str) -> str:
        encoded = self._names.get(name)
        if encoded is None:
            encoded = self._names[name] = json.dumps(name)
        return encoded
