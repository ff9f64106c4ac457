"""Zone-level resources: the zone owner's TLS settings, and previews that own none."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, StackValidationPolicy

from .kube import dig, gpu_requests, object_name, pod_spec

ZONE_SETTING = "cloudflare:index/zoneSetting:ZoneSetting"
ZONE = "cloudflare:index/zone:Zone"
NAMESPACE = "kubernetes:core/v1:Namespace"
# Resources that act on the whole zone (or its hostnames at the edge): one stack owns them, never a preview.
ZONE_LEVEL_TYPES = (
    ZONE,
    ZONE_SETTING,
    "cloudflare:index/ruleset:Ruleset",
    "cloudflare:index/loadBalancer:LoadBalancer",
    "cloudflare:index/loadBalancerPool:LoadBalancerPool",
    "cloudflare:index/loadBalancerMonitor:LoadBalancerMonitor",
    "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication",
    "cloudflare:index/certificatePack:CertificatePack",
)
# setting id -> accepted values
REQUIRED_ZONE_SETTINGS = {"ssl": ("strict",), "always_use_https": ("on",), "min_tls_version": ("1.2", "1.3")}
DISPOSABLE_LABEL = "llm-edge.dev/disposable"


def _zone_tls(args, report_violation):
    settings = [r for r in args.resources if r.resource_type == ZONE_SETTING]
    if not settings and not any(r.resource_type == ZONE for r in args.resources):
        return  # this stack does not own the zone
    seen = {}
    for resource in settings:
        seen[resource.props.get("settingId")] = resource
    for setting_id, accepted in REQUIRED_ZONE_SETTINGS.items():
        resource = seen.get(setting_id)
        if resource is None:
            report_violation(
                f"this stack owns the zone but does not set {setting_id} (required: {' or '.join(accepted)})."
            )
        elif resource.props.get("value") not in accepted:
            report_violation(
                f"zone setting {setting_id} is {resource.props.get('value')!r}; required: {' or '.join(accepted)}.",
                resource.urn,
            )


def _is_preview(args) -> bool:
    if args.get_config().get("previewStack", False):
        return True
    return any(
        r.resource_type == NAMESPACE and dig(r.props, "metadata", "labels", DISPOSABLE_LABEL) == "true"
        for r in args.resources
    )


def _preview_disposable(args, report_violation):
    if not _is_preview(args):
        return
    for resource in args.resources:
        if resource.resource_type in ZONE_LEVEL_TYPES:
            report_violation(
                f"preview stack owns zone-level resource {resource.name} ({resource.resource_type}): only the zone "
                "owner (edge.manageZone) may; previews share the zone.",
                resource.urn,
            )
        spec = pod_spec(resource.resource_type, resource.props)
        if spec is not None and gpu_requests(spec):
            report_violation(
                f"preview stack requests GPUs in {object_name(resource.props)}: previews route to dev's model "
                "Services instead of running models.",
                resource.urn,
            )


zone_tls_settings = StackValidationPolicy(
    name="zone-tls-settings",
    description="When the stack owns the zone: SSL strict, always-use-HTTPS on, minimum TLS 1.2.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_zone_tls,
)
preview_disposable = StackValidationPolicy(
    name="preview-disposable",
    description="Preview stacks own no zone-level resources and request no GPUs.",
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={
            "previewStack": {
                "type": "boolean",
                "default": False,
                "description": "the stack is a preview even if no namespace is labelled disposable",
            }
        }
    ),
    validate=_preview_disposable,
)

POLICIES = [zone_tls_settings, preview_disposable]
