"""Area `gateway` (type tokens `llm-edge:gateway:*`): the API-key gateway (gateway/) deployed in one
cluster, and the store its shared limits live in."""

from components.gateway.gateway import METRICS_PORT, PORT, ApiGateway, GatewayArgs, SharedLimitsWiring, Upstream, gateway_config
from components.gateway.limit_store import PORT as LIMIT_STORE_PORT
from components.gateway.limit_store import LimitStore, LimitStoreArgs, store_url

__all__ = [
    "LIMIT_STORE_PORT", "METRICS_PORT", "PORT", "ApiGateway", "GatewayArgs", "LimitStore", "LimitStoreArgs",
    "SharedLimitsWiring", "Upstream", "gateway_config", "store_url",
]
