"""Per-client requests-per-minute and tokens-per-minute limits, as token buckets.

The buckets live in this process: with N gateway replicas behind one Service a client can get
up to N times its configured rate (see README, "Limits").
"""

from __future__ import annotations

import math
import time


class TokenBucket:
    """Holds up to `per_minute` units and refills at per_minute/60 units per second.

    A bucket may go into debt (negative level): token usage is only known after the upstream
    answered, so a large response is charged in full and later requests wait until it is repaid.
    """

    def __init__(self, per_minute: int, clock=time.monotonic):
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._level = self._capacity
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self._capacity, self._level + (now - self._updated) * self._rate)
        self._updated = now

    def wait_time(self, amount: float) -> float:
        """Seconds until `amount` units are available (0 if they are now)."""
        self._refill()
        return 0.0 if self._level >= amount else (amount - self._level) / self._rate

    def take(self, amount: float) -> None:
        self._refill()
        self._level -= amount


# How a 429's message names each limit, and the limit's config key (the gateway_rate_limited_total label).
REQUESTS_PER_MINUTE = "requests per minute"
TOKENS_PER_MINUTE = "tokens per minute"
LIMIT_KEYS = {REQUESTS_PER_MINUTE: "rpm", TOKENS_PER_MINUTE: "tpm"}


class ClientLimits:
    def __init__(self, rpm: int | None, tpm: int | None, clock=time.monotonic):
        self._requests = TokenBucket(rpm, clock) if rpm else None
        self._tokens = TokenBucket(tpm, clock) if tpm else None

    def admit(self) -> tuple[str, int] | None:
        """Take one request; if a limit is exhausted, return (which, Retry-After seconds) instead."""
        if self._tokens is not None:
            # Any positive balance admits: the cost is only known afterwards.
            wait = self._tokens.wait_time(1)
            if wait:
                return TOKENS_PER_MINUTE, math.ceil(wait)
        if self._requests is not None:
            wait = self._requests.wait_time(1)
            if wait:
                return REQUESTS_PER_MINUTE, math.ceil(wait)
            self._requests.take(1)
        return None

    def charge_tokens(self, tokens: int) -> None:
        if self._tokens is not None and tokens:
            self._tokens.take(tokens)
