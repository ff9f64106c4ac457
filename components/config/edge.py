"""Config of what sits in front of the clusters: Cloudflare zone and edge protection, tunnels, secrets, traffic, previews."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator

from components.config.base import DnsLabel, Hostname, Model, PinnedImage


class Cloudflare(Model):
    account_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    zone: Hostname


class RateLimit(Model):
    """Cloudflare rate limiting of the API hostname, counted per client IP (and Cloudflare data centre)."""

    requests_per_period: Annotated[int, Field(ge=1, le=1_000_000)] = 600
    # Cloudflare accepts only these periods and timeouts (the free plan: 10 seconds).
    period_seconds: Literal[10, 60, 120, 300, 600, 3600] = 60
    mitigation_timeout_seconds: Literal[0, 10, 60, 120, 300, 600, 3600, 86400] = 60


class Access(Model):
    """Cloudflare Access in front of the API: only the listed machine clients (service tokens) get through."""

    # Machine client names; each gets a service token whose id and secret go to Secrets Manager.
    service_tokens: Annotated[list[DnsLabel], Field(min_length=1)]
    # How long a token is valid (Cloudflare duration, e.g. 8760h).
    token_duration: Annotated[str, Field(pattern=r"^[0-9]+h$")] = "8760h"


class Edge(Model):
    """Zone-level resources. Only one stack may own them."""

    manage_zone: bool = False
    # Create the zone instead of looking up an existing one (only with manageZone).
    create_zone: bool = False
    # Edge protection of the API hostname (zone-level: only with manageZone).
    rate_limit: Optional[RateLimit] = None
    access: Optional[Access] = None


class Preview(Model):
    """A pull-request preview stack `pr-<N>`, derived from dev's config (docs/previews.md).

    The workflow copies dev's config into the new stack and sets `enabled`, `number` and
    `gatewayImage`; dev's own config may set `domain`. `components/preview.py` applies it.
    """

    enabled: bool = False
    number: Optional[Annotated[int, Field(ge=1)]] = None
    # Preview hostnames are `pr-<N>.<domain>`; default: the zone (covered by its universal certificate).
    domain: Optional[Hostname] = None
    # The gateway image built from the pull request.
    gateway_image: Optional[PinnedImage] = None
    # Namespace of dev's model Services the preview's gateway routes to; default: dev's namespace.
    models_namespace: Optional[DnsLabel] = None
    # The stack whose models (and vLLM API key, read from its AWS secret) the preview uses.
    source_stack: DnsLabel = "dev"


class Tunnel(Model):
    """Origin settings of the tunnel's ingress rules."""

    # Where cloudflared sends public traffic; default: the gateway Service. Set it to front an
    # existing OpenAI-compatible service without the gateway; `{namespace}` is replaced by the
    # cluster's namespace.
    origin_service: Optional[Annotated[str, Field(pattern=r"^https?://[^\s/]+(:[0-9]+)?/?$")]] = None
    connect_timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 10
    keep_alive_connections: Annotated[int, Field(ge=1, le=1024)] = 100
    keep_alive_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 90
    # For an https origin with a self-signed certificate in dev only (policy tunnel-origin-tls).
    no_tls_verify: bool = False


class Secrets(Model):
    """AWS Secrets Manager (system of record) and how secrets reach the clusters."""

    delivery: Literal["direct", "external-secrets"] = "direct"
    # 0 deletes at once; otherwise AWS allows 7 to 30 days.
    recovery_window_days: int = 30
    # A customer-managed key, as an ARN (the reader role's policy names it).
    kms_key_id: Optional[Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$")]] = None
    # Name prefix of every secret of this stack; `{stack}` is replaced by the stack name.
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9/_+=.@{}-]+$")] = "llm-edge/{stack}"
    # Needed by external-secrets delivery (the SecretStore names the region).
    region: Optional[Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")]] = None
    refresh_interval: Annotated[str, Field(pattern=r"^[0-9]+[smh]$")] = "1h"

    @field_validator("recovery_window_days")
    @classmethod
    def _aws_window(cls, days: int) -> int:
        if days != 0 and not 7 <= days <= 30:
            raise ValueError("must be 0 (delete at once) or between 7 and 30 days")
        return days


class LoadBalancer(Model):
    """The Cloudflare Load Balancer of `traffic.mode: weighted` (needs the Load Balancing add-on)."""

    # The gateway's liveness path, probed through each cluster's tunnel with the public Host header.
    monitor_path: Annotated[str, Field(pattern=r"^/[^\s?#]*$")] = "/healthz"
    monitor_type: Literal["https", "http"] = "https"
    # Cloudflare's minimum interval depends on the plan (60 s on the entry Load Balancing plan).
    interval_seconds: Annotated[int, Field(ge=10, le=3600)] = 60
    timeout_seconds: Annotated[int, Field(ge=1, le=10)] = 5
    retries: Annotated[int, Field(ge=0, le=5)] = 2
    # One code (`200`) or a class (`2xx`), as Cloudflare monitors accept them.
    expected_codes: Annotated[str, Field(pattern=r"^[1-5]([0-9][0-9]|xx)$")] = "200"
    # Every policy listed uses the weights (`random_steering`); the others would ignore them.
    steering_policy: Literal["random", "least_outstanding_requests", "least_connections"] = "random"


class Traffic(Model):
    """Which cluster(s) the public hostname sends traffic to (docs/migration.md)."""

    # dns: a proxied CNAME to `active`'s tunnel. weighted: a Cloudflare Load Balancer over every
    # enabled cluster, with the weights below.
    mode: Literal["dns", "weighted"] = "dns"
    # Defaults to the only cluster when there is exactly one.
    active: Optional[DnsLabel] = None
    # Relative weights (percentages when they sum to 100); an enabled cluster not listed gets 0:
    # its pool exists and is monitored but receives no traffic.
    weights: dict[DnsLabel, Annotated[int, Field(ge=0, le=100)]] = Field(default_factory=dict)
    load_balancer: LoadBalancer = LoadBalancer()


# Prometheus durations as `for` accepts them in a PrometheusRule (e.g. 90s, 5m, 1h).
