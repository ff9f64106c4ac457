"""The typed stack config: parsed once, before any resource is registered (stack.py).

One module per area, named like the component areas (edge, tunnel, secrets, cluster, inference,
gateway, traffic, observability, preview); everything is importable from `components.config`.
"""

from components.config.base import PROJECT, ConfigError, DnsLabel, Hostname, Model, PinnedImage, Resources, Taint, is_pinned_image
from components.config.cluster import (
    DEFAULT_TOLERATED_TAINTS,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    ClusterSettings,
    GpuSettings,
    ModelOverride,
    NetworkPolicySettings,
)
from components.config.edge import AccessSettings, CloudflareSettings, EdgeSettings, RateLimitSettings
from components.config.gateway import GATEWAY_SERVICE_URL, GatewayClientSettings, GatewaySettings, GatewaySharedLimitsSettings
from components.config.inference import BackendSettings, ModelCacheSettings, ModelPlan, ModelSettings
from components.config.observability import AlertRules, AlertSettings, DashboardSettings
from components.config.plans import PLANS, certificate_hosts, deep_hostnames, rate_limit_can_match_hosts
from components.config.preview import (
    DISPOSABLE_LABEL,
    PULL_REQUEST_LABEL,
    PreviewSettings,
    disposable_annotations,
    disposable_labels,
    preview_namespace,
    preview_number,
)
from components.config.secrets import SecretsSettings
from components.config.stack import (
    TOP_LEVEL_KEYS,
    StackSettings,
    config_key_references,
    decode_project_config,
    load_stack_config,
    parse_stack_config,
    read_project_config,
)
from components.config.traffic import LoadBalancerSettings, TrafficSettings
from components.config.tunnel import ConnectorSettings, RouteSettings, TunnelSettings

__all__ = [
    "DEFAULT_TOLERATED_TAINTS", "DISPOSABLE_LABEL", "GATEWAY_SERVICE_URL", "GPU_PRODUCT_LABEL", "GPU_RESOURCE",
    "PLANS", "PROJECT", "PULL_REQUEST_LABEL", "TOP_LEVEL_KEYS",
    "AccessSettings", "AlertRules", "AlertSettings", "BackendSettings", "CloudflareSettings", "ClusterSettings",
    "ConfigError", "ConnectorSettings", "DashboardSettings", "DnsLabel", "EdgeSettings", "GatewayClientSettings", "GatewaySettings",
    "GatewaySharedLimitsSettings",
    "GpuSettings", "Hostname", "LoadBalancerSettings", "Model", "ModelCacheSettings", "ModelOverride", "ModelPlan",
    "ModelSettings", "NetworkPolicySettings", "PinnedImage", "PreviewSettings", "RateLimitSettings", "Resources",
    "RouteSettings", "SecretsSettings", "StackSettings", "Taint", "TrafficSettings", "TunnelSettings",
    "certificate_hosts", "config_key_references", "decode_project_config", "deep_hostnames", "disposable_annotations", "disposable_labels",
    "is_pinned_image", "load_stack_config", "parse_stack_config", "preview_namespace", "preview_number",
    "rate_limit_can_match_hosts", "read_project_config",
]
