"""Area `tunnel` (type tokens `llm-edge:tunnel:*`): one remotely-managed Cloudflare Tunnel per
cluster with its ingress rules and DNS records, and the cloudflared connectors that dial out."""

from components.tunnel.connector import APP as CONNECTOR_APP
from components.tunnel.connector import METRICS_PORT as CONNECTOR_METRICS_PORT
from components.tunnel.connector import CloudflaredConnector, CloudflaredConnectorArgs
from components.tunnel.tunnel import InferenceTunnel, InferenceTunnelArgs, IngressRule, OriginRequest, proxied_cname

__all__ = [
    "CONNECTOR_APP", "CONNECTOR_METRICS_PORT", "CloudflaredConnector", "CloudflaredConnectorArgs", "IngressRule",
    "InferenceTunnel", "InferenceTunnelArgs",
    "OriginRequest", "proxied_cname",
]
