"""The API port: accepts client connections up to client_max_connections, refuses the rest with
a clean 503, and drains.

A refused connection gets a whole reply and a lingering close (its request read and dropped for a
moment) rather than a reset, which could destroy the reply before the client reads it.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import cast

from aiohttp import web

from . import errors
from .config import ConfigError, GatewayConfig
from .connection import ClientConnection
from .logs import AccessLog, RequestIds
from .metrics import Metrics

log = logging.getLogger("gateway.listener")

_REFUSAL = "This gateway replica has as many connections as it takes; retry shortly."
_REFUSAL_LINGER_S = 1.0
# Refused connections lingering at once; beyond this they are closed at once. Part of the
# descriptors reserved beside the connections (below).
_MAX_LINGERING = 64
# Listening sockets, metrics scrapes, the config and log files, DNS look-ups, lingering refusals.
_RESERVED_DESCRIPTORS = 128


def descriptors_needed(max_connections: int) -> int:
    # Each client connection may hold one upstream connection (a request in flight, or one kept
    # alive after it).
    return 2 * max_connections + _RESERVED_DESCRIPTORS


def raise_descriptor_limit(max_connections: int) -> None:
    """Raise this process's open-file limit to what client_max_connections needs, or refuse to start.

    Containers start with the runtime's soft limit (often 1024) and a higher hard limit; like
    nginx's worker_rlimit_nofile, the gateway takes what its connection limit needs.
    """
    needed = descriptors_needed(max_connections)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise ConfigError([
                f"client_max_connections: {max_connections} connections need {needed} open files, and this process "
                f"may open at most {hard} (its hard limit): lower client_max_connections to "
                f"{max(1, (hard - _RESERVED_DESCRIPTORS) // 2)} or raise the container's nofile limit"])
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        except (OSError, ValueError) as exc:  # e.g. macOS caps the soft limit below an unlimited hard one
            raise ConfigError([f"client_max_connections: {max_connections} connections need {needed} open files, "
                               f"and the open-file limit cannot be raised to that ({exc}): lower "
                               "client_max_connections"]) from None


class _Refusal(asyncio.Protocol):
    def __init__(self, listener: ClientListener):
        self._listener = listener
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's is not a subclass of asyncio.Transport, so no isinstance check).
        stream = cast(asyncio.Transport, transport)
        stream.write(errors.raw_reply(503, _REFUSAL, "too_many_connections", self._listener.request_ids.take(None),
                                      "Retry-After: 1\r\n"))
        if self._listener.lingering >= _MAX_LINGERING:
            stream.close()
            return
        self._listener.lingering += 1
        stream.write_eof()
        self._timer = asyncio.get_running_loop().call_later(_REFUSAL_LINGER_S, stream.abort)

    def data_received(self, data: bytes) -> None:
        pass  # the request is not read: its reply has been sent

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._listener.lingering -= 1


class ClientListener:
    def __init__(self, server: web.Server, config: GatewayConfig, metrics: Metrics):
        self._server = server
        self._config = config
        self.request_ids = RequestIds()
        self.access_log = AccessLog()
        self._refused = metrics.connections_refused
        self._listening: asyncio.Server | None = None
        self.connections: set[ClientConnection] = set()
        self.lingering = 0
        metrics.client_connections.set_function(lambda: len(self.connections))

    async def start(self, host: str, port: int) -> None:
        self._listening = await asyncio.get_running_loop().create_server(self._accept, host, port, backlog=1024)

    def _accept(self) -> asyncio.Protocol:
        if len(self.connections) >= self._config.client_max_connections:
            self._refused.inc()
            return _Refusal(self)
        connection = ClientConnection(self._server, self._config, self.request_ids, self.access_log,
                                      self.connections.discard, asyncio.get_running_loop())
        self.connections.add(connection)
        return connection

    async def drain(self, deadline: float) -> None:
        """Stop listening and let the requests in flight finish until `deadline` (loop time); then cut them.

        Idle keep-alive connections close now; busy ones close after their reply.
        """
        if self._listening is not None:
            self._listening.close()
        for connection in list(self.connections):
            connection.stop()
        loop = asyncio.get_running_loop()
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
        if self.connections:
            log.warning("drain grace over: cutting %d connections with requests in flight", len(self.connections))
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
