"""Per-client rpm and tpm kept in Redis or Valkey, so they hold across replicas and clusters.

Every replica that points at the same store shares one budget per client. The arithmetic is the
local buckets' (gateway/limits.py) in GCRA form: each limit is one key holding its "theoretical
arrival time" (TAT), the instant the bucket would be full again, with a TTL that ends exactly
then (an absent key is a full bucket). Time is the store's own (`TIME`), so the replicas' clocks
do not matter. One Lua script admits and charges atomically.

Calls are batched and pipelined over one connection: what requests ask (admissions, token
charges after replies) goes to the store together in one EVALSHA, with up to two calls out at
once. A token charge rides with the replica's next admission, or goes on its own within 1 ms. So
a request costs one round trip, never waits behind another request's charge, and under load far
less: at 32 concurrent requests a call carries several of them. A call holds each client once:
the tokens its replies used since the last call, charged first, and the number of its requests
to admit, in turn. Requests that reach one replica within the same pass of its event loop are
simultaneous to the store; charging before admitting is the stricter of the two orders.

The store slow or down never fails a request: a call that takes longer than `timeout_ms` (a
watchdog checks, armed only while calls are made) or errors marks the store down; that batch and
every request after it are decided by local buckets holding `limit / fallback_replicas` each,
without waiting for the store, until a probe in the background reaches it again (every half
second). `gateway_limit_store_up` and `gateway_limit_store_errors_total` show it.

Only client names (from the config) and numbers are stored: never a key or its hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Iterable

from redis.asyncio import Connection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import TimeoutError as StoreTimeout

from .config import ClientSettings, SharedLimitsSettings
from .limits import REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE, ClientLimits
from .metrics import Metrics

log = logging.getLogger("gateway")

# The probe that brings a store back is not on any request's path: it may wait longer.
PROBE_INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 1.0
# Calls out at once on the connection.
PIPELINE = 2
# Longest a token charge waits for an admission to go with.
CHARGE_DELAY_S = 0.001
_REFUSED = {1: REQUESTS_PER_MINUTE, 2: TOKENS_PER_MINUTE}

# KEYS: the rpm and tpm key of each client in the call. ARGV, four for each client in the same
# order: its rpm and tpm (0: no such limit), the tokens to charge, and how many requests to admit.
# Returns three for each client: how many of its requests were admitted (the first ones), and for
# the rest the refusing limit (0 none, 1 rpm, 2 tpm) and the seconds until it would admit.
# Each key is read at most once and written at most once per call, so the store's work per call
# grows with the clients in it, not with their requests.
SCRIPT = b"""
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local window = 60000000
local function tat_of(key)
  local tat = tonumber(redis.call('GET', key) or 0)
  if tat < now then return now end
  return tat
end
-- The TTL ends when the bucket is full again: an absent key is a full bucket.
local function store(key, tat)
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)))
end
local results = {}
for c = 1, #KEYS / 2 do
  local rpm, tpm = tonumber(ARGV[4 * c - 3]), tonumber(ARGV[4 * c - 2])
  local tokens, admitted = tonumber(ARGV[4 * c - 1]), tonumber(ARGV[4 * c])
  local refused, wait = 0, 0
  if tpm > 0 and (tokens > 0 or admitted > 0) then
    local tat = tat_of(KEYS[2 * c])
    if tokens > 0 then
      tat = tat + tokens * window / tpm
      store(KEYS[2 * c], tat)
    end
    -- Any balance of one token admits: a request's cost is only known after its reply, so
    -- admitting one spends none, and the client's requests in this call are all admitted or none.
    local over = tat + window / tpm - now - window
    if admitted > 0 and over > 0 then admitted, refused, wait = 0, 2, over end
  end
  if rpm > 0 and admitted > 0 then
    local tat, step, room = tat_of(KEYS[2 * c - 1]), window / rpm, 0
    while room < admitted and tat + step - now <= window do
      tat, room = tat + step, room + 1
    end
    if room < admitted then refused, wait = 1, tat + step - now - window end
    if room > 0 then store(KEYS[2 * c - 1], tat) end
    admitted = room
  end
  results[3 * c - 2], results[3 * c - 1], results[3 * c] = admitted, refused, math.ceil(wait / 1000000)
end
return results
"""


class SharedClientLimits:
    """One client's limits in the store, and its local share for when the store is away."""

    __slots__ = ("name", "limited", "local", "keys", "limit_args", "_store")

    def __init__(self, store: LimitStore, client: ClientSettings, settings: SharedLimitsSettings):
        self.name = client.name
        self.limited = bool(client.rpm or client.tpm)
        self._store = store
        share = settings.fallback_replicas
        self.local = ClientLimits(_share(client.rpm, share), _share(client.tpm, share))
        prefix = settings.key_prefix + client.name
        self.keys = (f"{prefix}:rpm".encode(), f"{prefix}:tpm".encode())
        self.limit_args = (b"%d" % (client.rpm or 0), b"%d" % (client.tpm or 0))

    async def admit(self) -> tuple[str, int] | None:
        """As ClientLimits.admit, decided by the store (or the local share while it is away)."""
        if not self.limited:
            return None
        return await self._store.admit(self)

    def charge_tokens(self, tokens: int) -> None:
        if self.limited and tokens:
            self._store.charge(self, tokens)


def _share(limit: int | None, replicas: int) -> int | None:
    return math.ceil(limit / replicas) if limit else None


class _Asks:
    """What one client's requests ask of the store in one call: the tokens its replies used, and
    the admissions its requests wait for (in arrival order)."""

    __slots__ = ("tokens", "admissions")

    def __init__(self) -> None:
        self.tokens = 0
        self.admissions: list[asyncio.Future] = []


# A call's contents: each client once, in the order it first asked.
_Batch = dict[SharedClientLimits, _Asks]


class LimitStore:
    """The connection to the store, the batches sent over it, and whether it is up."""

    def __init__(self, settings: SharedLimitsSettings, url: str, password: str | None, metrics: Metrics):
        assert metrics.limit_store_up is not None and metrics.limit_store_errors is not None, "Metrics(limit_store=True)"
        self._settings = settings
        self._timeout_s = settings.timeout_ms / 1000
        # redis-py's connection (connect, AUTH, SELECT, TLS for rediss://, RESP, the hiredis
        # parser) without its command layer: one connection carries every batch, pipelined, and
        # the timeout is this module's watchdog. No retries: a failed call is decided locally at once.
        self._connection: Connection = ConnectionPool.from_url(
            url, password=password, socket_timeout=None, socket_connect_timeout=PROBE_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0), client_name="llm-edge-gateway",
        ).make_connection()
        self._sha = b""
        self._up_gauge = metrics.limit_store_up
        self._errors = {kind: metrics.limit_store_errors.labels(kind) for kind in ("timeout", "connection", "response")}
        self._up_gauge.set(0)
        self.up = False
        self._queue: _Batch = {}
        # Batches sent and not answered yet, oldest first, each with the time it must be answered by.
        self._in_flight: deque[tuple[float, _Batch]] = deque()
        # Counts the connections given up on: a reply or an error of an older one is stale.
        self._epoch = 0
        self._reading = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._charge_timer: asyncio.TimerHandle | None = None
        self._sender_wakeup: asyncio.Future | None = None
        self._reader_wakeup: asyncio.Future | None = None
        self._tasks: list[asyncio.Task] = []
        self._prober: asyncio.Task | None = None
        self._dropping: asyncio.Task | None = None
        self._closing = False

    def client_limits(self, clients: Iterable[ClientSettings]) -> dict[str, SharedClientLimits]:
        return {c.name: SharedClientLimits(self, c, self._settings) for c in clients}

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """One attempt now, so a replica starts on shared limits when the store is there."""
        self._tasks = [asyncio.create_task(self._send_batches()), asyncio.create_task(self._read_replies())]
        if not await self._probe():
            self._prober = asyncio.create_task(self._probe_until_up())

    async def close(self) -> None:
        """Send what is queued (token charges of the last replies), then disconnect."""
        self._closing = True  # a failure from here on starts no prober: nothing would stop it
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PROBE_TIMEOUT_S
        while (self._queue or self._in_flight) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for task in (*self._tasks, self._dropping):  # a drop of a connection given up on, if one is under way
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for timer in (self._watchdog, self._charge_timer):
            if timer is not None:
                timer.cancel()
        await self._drop_connection()

    # --- the request path --------------------------------------------------------------

    async def admit(self, client: SharedClientLimits) -> tuple[str, int] | None:
        if not self.up:
            return client.local.admit()
        future = asyncio.get_running_loop().create_future()
        self._asks(client).admissions.append(future)
        # The sender runs on the next pass of the loop: what other requests ask in this pass joins the batch.
        _wake(self._sender_wakeup)
        return await future

    def charge(self, client: SharedClientLimits, tokens: int) -> None:
        if not self.up:
            client.local.charge_tokens(tokens)
            return
        # Rides with this replica's next admission (in the same call, charged before it), or goes
        # on its own within CHARGE_DELAY_S: one call per request instead of two when requests follow
        # each other, and one charge per client in a call, however many replies it sums.
        self._asks(client).tokens += tokens
        if self._charge_timer is None:
            self._charge_timer = asyncio.get_running_loop().call_later(CHARGE_DELAY_S, self._send_charges)

    def _send_charges(self) -> None:
        self._charge_timer = None
        _wake(self._sender_wakeup)

    def _asks(self, client: SharedClientLimits) -> _Asks:
        asks = self._queue.get(client)
        if asks is None:
            asks = self._queue[client] = _Asks()
        return asks

    async def _send_batches(self) -> None:
        """Sends everything queued as one call, with at most PIPELINE calls in flight: a request
        never waits behind the previous reply's token charge, and under load each call carries
        what queued while the others were out."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue or len(self._in_flight) >= PIPELINE:
                self._sender_wakeup = loop.create_future()
                await self._sender_wakeup
            batch, self._queue = self._queue, {}
            if not self.up:
                _decide_locally(batch)
                continue
            epoch = self._epoch
            self._in_flight.append((loop.time() + self._timeout_s, batch))
            if self._watchdog is None:
                self._watchdog = loop.call_at(self._in_flight[0][0], self._check_in_flight)
            _wake(self._reader_wakeup)
            try:
                await self._connection.send_packed_command(_packed(self._command(batch)), check_health=False)
            except Exception as exc:  # whatever the store path raised, the requests go on
                if epoch == self._epoch:
                    await self._give_up(exc)

    async def _read_replies(self) -> None:
        """The replies, in the order the calls went out (RESP answers in order on one connection)."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._in_flight:
                self._reader_wakeup = loop.create_future()
                await self._reader_wakeup
            epoch = self._epoch
            self._reading = True
            try:
                results = await self._connection.read_response()
            except Exception as exc:
                if epoch == self._epoch:
                    await self._give_up(exc)
                continue
            finally:
                self._reading = False
            if epoch != self._epoch or not self._in_flight:
                continue  # given up on meanwhile: its requests are decided already
            _, batch = self._in_flight.popleft()
            _wake(self._sender_wakeup)
            try:
                _resolve(batch, results)
            except Exception as exc:  # not the script's reply shape: decide locally, as for any error
                _decide_locally(batch)
                await self._give_up(exc)

    def _command(self, batch: _Batch) -> tuple[bytes, ...]:
        keys: list[bytes] = []
        args: list[bytes] = []
        for client, asks in batch.items():
            keys += client.keys
            args += client.limit_args
            args.append(b"%d" % asks.tokens)
            args.append(b"%d" % len(asks.admissions))
        return (b"EVALSHA", self._sha, b"%d" % len(keys), *keys, *args)

    def _check_in_flight(self) -> None:
        """The timeout: a watchdog armed only while calls are out, rather than a timer per call."""
        self._watchdog = None
        if not self._in_flight:
            return
        loop = asyncio.get_running_loop()
        deadline = self._in_flight[0][0]
        if loop.time() < deadline:
            self._watchdog = loop.call_at(deadline, self._check_in_flight)
            return
        # Given up on at once, not in a task of its own: a reply landing before that task ran
        # would otherwise be taken as an answer from a store already counted as down.
        self._abandon(TimeoutError())
        self._dropping = loop.create_task(self._drop_connection())

    # --- down and up again -------------------------------------------------------------

    async def _give_up(self, exc: BaseException) -> None:
        """Decide every call still out locally, go down and drop the connection."""
        self._abandon(exc)
        await self._drop_connection()

    def _abandon(self, exc: BaseException) -> None:
        """Decide every call still out locally, count the error and go down, all in one step."""
        self._epoch += 1
        while self._in_flight:
            _decide_locally(self._in_flight.popleft()[1])
        self._mark_down(exc)
        # And what queued behind them: the sender may be stuck writing to the store (below).
        queued, self._queue = self._queue, {}
        _decide_locally(queued)

    async def _drop_connection(self) -> None:
        """End the connection at once: a reply cut short could still arrive on it, so it cannot be reused.

        A plain close waits for what is still to be written, and a call larger than the socket
        buffers (thousands of clients) to a store that stopped reading would never be: the
        sender would stay inside that write and the reader on its reply, and no probe could run.
        Aborting the transport ends both at once. redis-py (pinned) keeps the asyncio
        StreamWriter in `_writer` and has no abort of its own.
        """
        writer = self._connection._writer
        if writer is not None:
            writer.transport.abort()
        await self._connection.disconnect(nowait=True)

    def _mark_down(self, exc: BaseException) -> None:
        # redis-py's AuthenticationError is a ConnectionError, yet the store did answer.
        kind = "timeout" if isinstance(exc, TimeoutError | StoreTimeout) else (
            "response" if isinstance(exc, ResponseError | AuthenticationError) else "connection")
        self._errors[kind].inc()
        if self.up:
            # First, so that requests arriving meanwhile no longer queue for the store.
            self.up = False
            self._up_gauge.set(0)
            log.warning("limit store %s (%s): rpm and tpm are local shares on this replica until it answers",
                        "timed out" if kind == "timeout" else "failed", type(exc).__name__)
            if not self._closing and (self._prober is None or self._prober.done()):
                self._prober = asyncio.create_task(self._probe_until_up())

    async def _probe(self) -> bool:
        """Connect, and load the script (a store that restarted or was flushed has lost it)."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await self._connection.connect()
                await self._connection.send_packed_command(_packed((b"SCRIPT", b"LOAD", SCRIPT)), check_health=False)
                self._sha = await self._connection.read_response()
        except (RedisError, OSError, TimeoutError) as exc:
            self._mark_down(exc)
            await self._drop_connection()
            return False
        self.up = True
        self._up_gauge.set(1)
        log.info("limit store reached: rpm and tpm are shared")
        return True

    async def _probe_until_up(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL_S)
            # A read given up on could still be unwinding on the old connection: let it end first.
            if not self._reading and await self._probe():
                return


def _wake(waiter: asyncio.Future | None) -> None:
    """Wakes a task waiting on `waiter`, if one is."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _packed(command: tuple[bytes, ...]) -> bytes:
    """A RESP array of bulk strings (redis-py's pack_command does the same in several times the time)."""
    return b"*%d\r\n" % len(command) + b"".join(b"$%d\r\n%b\r\n" % (len(part), part) for part in command)


def _decide_locally(batch: _Batch) -> None:
    for client, asks in batch.items():
        client.local.charge_tokens(asks.tokens)
        for future in asks.admissions:
            if not future.done():  # its request may have been cancelled meanwhile
                future.set_result(client.local.admit())


def _resolve(batch: _Batch, results: list[int]) -> None:
    replies = iter(results)
    for asks in batch.values():
        admitted, refused, wait = next(replies), next(replies), next(replies)
        refusal = (_REFUSED[refused], wait) if admitted < len(asks.admissions) else None
        for number, future in enumerate(asks.admissions):
            if not future.done():
                future.set_result(None if number < admitted else refusal)
