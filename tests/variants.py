"""Every stack variant the whole-stack tests render: the stack files plus generated variants.

Each entry is (id, stack, overrides); later features add their variants here so that schema
validation and policies cover them all.
"""

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

VARIANTS = [
    ("dev", "dev", None),
    ("dev-external-secrets", "dev", EXTERNAL_SECRETS_OVERRIDES),
    ("prod", "prod", None),
]
