"""Config of the API-key gateway between the tunnel and the models (gateway/README.md)."""

from __future__ import annotations

from typing import Annotated

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
