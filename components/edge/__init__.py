"""Area `edge` (type tokens `llm-edge:edge:*`): the Cloudflare zone, its TLS settings, and what the
edge does to API requests before they reach a tunnel (rate limit, Access)."""

from components.edge.protection import EdgeProtection, EdgeProtectionArgs, rate_limited_requests
from components.edge.zone import EdgeZone, EdgeZoneArgs

__all__ = ["EdgeProtection", "EdgeProtectionArgs", "EdgeZone", "EdgeZoneArgs", "rate_limited_requests"]
