"""Config of the API-key gateway between the tunnel and the models (gateway/README.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from components.config.base import DnsLabel, Model, PinnedImage, Resources

GATEWAY_SERVICE_URL = "http://gateway.{namespace}.svc.cluster.local:8080"


class GatewayClientSettings(Model):
    """An API client: its key is generated, stored in AWS Secrets Manager, and only its hash reaches the cluster."""

    name: DnsLabel
    # Model names the key may use, or ["*"].
    models: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] = ["*"]
    rpm: Annotated[int, Field(ge=1)] | None = None
    tpm: Annotated[int, Field(ge=1)] | None = None


class GatewaySharedLimitsSettings(Model):
    """rpm and tpm kept in Redis or Valkey, shared by every gateway replica (gateway/README.md, "Limits")."""

    # in-cluster: a Valkey of this stack's own in each cluster (its replicas share it); external:
    # one store at the URL in a secret config key, so every cluster shares it (docs/migration.md).
    mode: Literal["in-cluster", "external"]
    # external: a secret config key holding the store's URL, e.g. rediss://:<auth token>@<host>:6379/0.
    url_config_key: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")] | None = None
    # in-cluster: the store's image and container resources.
    image: PinnedImage = "valkey/valkey:8.1.4"
    resources: Resources = Resources(cpu_request="50m", memory_request="32Mi", cpu_limit="500m", memory_limit="128Mi")
    # Longest wait for the store on a request, then the replica decides by its local share.
    timeout_ms: Annotated[int, Field(ge=1, le=1000)] = 20


class GatewaySettings(Model):
    """The API-key gateway between the tunnel and the models (see gateway/README.md)."""

    enabled: bool = True
    image: PinnedImage = "ghcr.io/llm-edge/llm-edge-gateway:0.1.0"
    replicas: Annotated[int, Field(ge=2, le=50)] = 2
    max_replicas: Annotated[int, Field(ge=2, le=100)] = 6
    target_cpu_utilization: Annotated[int, Field(ge=10, le=100)] = 70
    clients: list[GatewayClientSettings] = Field(default_factory=list)
    cors_origins: list[Annotated[str, Field(pattern=r"^https?://[a-z0-9.-]+(:[0-9]+)?$")]] = Field(default_factory=list)
    max_body_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    upstream_read_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 300
    # A non-streaming reply that has not started by then is answered 504 `edge_timeout` (stream
    # instead) before Cloudflare's 524 at ~100 s; checked against the plan in config/plans.py.
    edge_first_byte_timeout_seconds: Annotated[int, Field(ge=1, le=6000)] = 95
    drain_grace_seconds: Annotated[int, Field(ge=1, le=600)] = 30
    resources: Resources = Resources(cpu_request="250m", memory_request="128Mi", cpu_limit="1", memory_limit="512Mi")
    # Without it, each replica keeps its own buckets (a client gets up to replicas x its limits).
    shared_limits: GatewaySharedLimitsSettings | None = None
