"""Config of the Cloudflare account and zone, and the zone-level edge protection (one stack owns it)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from components.config.base import DnsLabel, Hostname, Model
from components.config.plans import AddOn, Plan


class CloudflareSettings(Model):
    account_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    zone: Hostname
    # The zone's plan and the paid add-ons bought: they decide which edge features the config may
    # use (components/config/plans.py checks every one when the config is parsed).
    plan: Plan = "free"
    add_ons: list[AddOn] = Field(default_factory=list)


class RateLimitSettings(Model):
    """Cloudflare rate limiting of the API hostname, counted per client IP (and Cloudflare data centre)."""

    requests_per_period: Annotated[int, Field(ge=1, le=1_000_000)] = 100
    # The values Cloudflare's API accepts; which of them the zone's plan allows is checked in
    # plans.py (the defaults are the free plan's only ones).
    period_seconds: Literal[10, 60, 120, 300, 600, 3600] = 10
    mitigation_timeout_seconds: Literal[0, 10, 60, 120, 300, 600, 3600, 86400] = 10


class AccessSettings(Model):
    """Cloudflare Access in front of the API: only the listed machine clients (service tokens) get through."""

    # Machine client names; each gets a service token whose id and secret go to Secrets Manager.
    service_tokens: Annotated[list[DnsLabel], Field(min_length=1)]
    # How long a token is valid (Cloudflare duration, e.g. 8760h).
    token_duration: Annotated[str, Field(pattern=r"^[0-9]+h$")] = "8760h"


class EdgeSettings(Model):
    """Zone-level resources. Only one stack may own them."""

    manage_zone: bool = False
    # Create the zone instead of looking up an existing one (only with manageZone).
    create_zone: bool = False
    # Edge protection of the API hostname (zone-level: only with manageZone).
    rate_limit: RateLimitSettings | None = None
    access: AccessSettings | None = None
