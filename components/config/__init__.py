"""Typed stack config: parsed once, before any resource is registered (see stack.py).

One module per area; everything is importable from `components.config`.
"""

from components.config.alerts import Alerts, AlertRules
from components.config.base import (
    DEFAULT_TOLERATED_TAINTS,
    PROJECT,
    ConfigError,
    DnsLabel,
    Hostname,
    Model,
    PinnedImage,
    Resources,
    Taint,
    is_pinned_image,
)
from components.config.cluster import GPU_PRODUCT_LABEL, GPU_RESOURCE, Cluster, Connector, Gpu, ModelOverride
from components.config.edge import Access, Cloudflare, Edge, LoadBalancer, Preview, RateLimit, Secrets, Traffic, Tunnel
from components.config.serving import (
    GATEWAY_SERVICE_URL,
    Backend,
    Gateway,
    GatewayClient,
    ModelCache,
    ModelPlan,
    NetworkPolicies,
    Route,
    ServedModel,
)
from components.config.stack import (
    TOP_LEVEL_KEYS,
    StackConfig,
    config_key_references,
    decode_project_config,
    load_stack_config,
    parse_stack_config,
    read_project_config,
)

__all__ = [
    "DEFAULT_TOLERATED_TAINTS", "GATEWAY_SERVICE_URL", "GPU_PRODUCT_LABEL", "GPU_RESOURCE", "PROJECT", "TOP_LEVEL_KEYS",
    "Access", "AlertRules", "Alerts", "Backend", "Cloudflare", "Cluster", "ConfigError", "Connector", "DnsLabel", "Edge",
    "Gateway", "GatewayClient", "Gpu", "Hostname", "LoadBalancer", "Model", "ModelCache", "ModelOverride", "ModelPlan",
    "NetworkPolicies", "PinnedImage", "Preview", "RateLimit", "Resources", "Route", "Secrets", "ServedModel",
    "StackConfig", "Taint", "Traffic", "Tunnel", "config_key_references", "decode_project_config", "is_pinned_image",
    "load_stack_config", "parse_stack_config", "read_project_config",
]
