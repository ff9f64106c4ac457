"""Area `gateway` (type tokens `llm-edge:gateway:*`): the API-key gateway (gateway/) deployed in one cluster."""

from components.gateway.gateway import METRICS_PORT, PORT, ApiGateway, GatewayArgs, Upstream, gateway_config

__all__ = ["METRICS_PORT", "PORT", "ApiGateway", "GatewayArgs", "Upstream", "gateway_config"]
