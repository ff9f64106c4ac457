"""Config of the tunnels: origin settings, the cloudflared connectors, and extra hostname routes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from components.config.base import DnsLabel, Hostname, Model, PinnedImage, Resources


class TunnelSettings(Model):
    """Origin settings of the tunnel's ingress rules."""

    # Where cloudflared sends public traffic; default: the gateway Service. Set it to front an
    # existing OpenAI-compatible service without the gateway; `{namespace}` is replaced by the
    # cluster's namespace.
    origin_service: Annotated[str, Field(pattern=r"^https?://[^\s/]+(:[0-9]+)?/?$")] | None = None
    connect_timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 10
    keep_alive_connections: Annotated[int, Field(ge=1, le=1024)] = 100
    keep_alive_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 90
    # For an https origin with a self-signed certificate in dev only (policy tunnel-origin-tls).
    no_tls_verify: bool = False


class ConnectorSettings(Model):
    """The cloudflared Deployment of one cluster."""

    replicas: Annotated[int, Field(ge=2, le=20)] = 2
    image: PinnedImage = "cloudflare/cloudflared:2025.11.1"
    resources: Resources = Resources()


class RouteSettings(Model):
    """An extra public hostname sent straight to one backend or model by the tunnel."""

    hostname: Hostname
    backend: DnsLabel
    # Publish a backend that checks no API key (e.g. Ollama); only behind Cloudflare Access.
    allow_unauthenticated: bool = False
