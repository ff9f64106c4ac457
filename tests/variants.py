"""Every stack variant the whole-stack tests render: the stack files plus generated variants.

Each entry is (id, stack, overrides); later features add their variants here so that schema
validation and policies cover them all.
"""

from pathlib import Path

import yaml

PROD_GATEWAY = yaml.safe_load((Path(__file__).resolve().parents[1] / "Pulumi.prod.yaml").read_text())["config"]["llm-edge:gateway"]

EXTERNAL_SECRETS_OVERRIDES = {
    "secrets": {"delivery": "external-secrets", "region": "eu-west-1", "recoveryWindowDays": 7},
    "clusters": {
        "dev": {
            "kubeconfigConfigKey": "kubeconfigDev",
            "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC123",
        }
    },
    "kubeconfigDev": {"secure": "v1:AAAA"},
}

# Cut-over steps of docs/migration.md (whole `traffic` key replaced; tests/components/traffic/test_switch.py).
# prod's validation hostnames are nested (blue.llm.example.com): a replaced `traffic` keeps that.
PROD_GREEN_ACTIVE_OVERRIDES = {"traffic": {"mode": "dns", "active": "green", "validationHostnames": "nested"}}
PROD_WEIGHTED_OVERRIDES = {
    "traffic": {"mode": "weighted", "active": "blue", "weights": {"blue": 90, "green": 10}, "validationHostnames": "nested"}
}

# Cloudflare Access in front of prod's API, for two machine clients.
PROD_ACCESS_OVERRIDES = {
    "edge": {
        "manageZone": True,
        "rateLimit": {"requestsPerPeriod": 100, "periodSeconds": 10, "mitigationTimeoutSeconds": 10},
        "access": {"serviceTokens": ["batch-jobs", "chat-app"]},
    }
}
# Shared limits (gateway.sharedLimits): a Valkey per cluster, or one external store for both clusters
# whose URL is a secret config key (docs/migration.md).
PROD_SHARED_LIMITS_IN_CLUSTER_OVERRIDES = {"gateway": {**PROD_GATEWAY, "sharedLimits": {"mode": "in-cluster"}}}
PROD_SHARED_LIMITS_EXTERNAL_OVERRIDES = {
    "gateway": {**PROD_GATEWAY, "sharedLimits": {"mode": "external", "urlConfigKey": "limitStoreUrl"}},
}
PREVIEW_OVERRIDES = {"preview": {"gatewayImage": "ghcr.io/llm-edge/llm-edge-gateway:pr-123-0a1b2c3"}}

VARIANTS = [
    ("dev", "dev", None),
    ("dev-external-secrets", "dev", EXTERNAL_SECRETS_OVERRIDES),
    ("prod", "prod", None),
    ("prod-green-active", "prod", PROD_GREEN_ACTIVE_OVERRIDES),
    ("prod-weighted", "prod", PROD_WEIGHTED_OVERRIDES),
    # A pull-request preview as the pr-stack workflow makes it: dev's config plus the PR's gateway image.
    ("pr-123", "pr-123", PREVIEW_OVERRIDES),
    ("prod-access", "prod", PROD_ACCESS_OVERRIDES),
    ("prod-shared-limits", "prod", PROD_SHARED_LIMITS_IN_CLUSTER_OVERRIDES),
    ("prod-shared-limits-external", "prod", PROD_SHARED_LIMITS_EXTERNAL_OVERRIDES),
]
