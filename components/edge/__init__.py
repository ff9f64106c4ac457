"""Area `edge` (type tokens `llm-edge:edge:*`): the Cloudflare zone, its TLS settings, and what the
edge does to API requests before they reach a tunnel (rate limit, Access)."""

from components.edge.protection import EdgeProtection, EdgeProtectionArgs, protected_hosts_expression
from components.edge.zone import EdgeZone, EdgeZoneArgs

__all__ = ["EdgeProtection", "EdgeProtectionArgs", "EdgeZone", "EdgeZoneArgs", "protected_hosts_expression"]
