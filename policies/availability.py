"""Production shape: the request path survives a node drain, and browsers get no wildcard CORS."""

from __future__ import annotations

import yaml
from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ResourceValidationPolicy, StackValidationPolicy

from .kube import dig, object_name

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
ACCESS_APP = "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication"
NAME_LABEL = "app.kubernetes.io/name"


def _replicas(deployment, autoscalers) -> int:
    """Declared replicas, or the autoscaler's floor when an HPA owns the count."""
    replicas = dig(deployment.props, "spec", "replicas")
    if replicas is not None:
        return replicas
    namespace = dig(deployment.props, "metadata", "namespace")
    name = dig(deployment.props, "metadata", "name")
    for hpa in autoscalers:
        target = dig(hpa.props, "spec", "scaleTargetRef") or {}
        if target.get("kind") == "Deployment" and target.get("name") == name and dig(hpa.props, "metadata", "namespace") == namespace:
            return dig(hpa.props, "spec", "minReplicas") or 1
    return 1


def _covered_by_budget(deployment, budgets) -> bool:
    namespace = dig(deployment.props, "metadata", "namespace")
    pod_labels = dig(deployment.props, "spec", "template", "metadata", "labels") or {}
    for budget in budgets:
        selector = dig(budget.props, "spec", "selector", "matchLabels") or {}
        if dig(budget.props, "metadata", "namespace") == namespace and selector and selector.items() <= pod_labels.items():
            return True
    return False


def _highly_available(args, report_violation):
    config = args.get_config()
    workloads = config.get("workloads", ["cloudflared", "gateway"])
    minimum = config.get("minReplicas", 2)
    budgets = [r for r in args.resources if r.resource_type == PDB]
    autoscalers = [r for r in args.resources if r.resource_type == HPA]
    for deployment in (r for r in args.resources if r.resource_type == DEPLOYMENT):
        app = dig(deployment.props, "spec", "template", "metadata", "labels", NAME_LABEL)
        if app not in workloads:
            continue
        name = object_name(deployment.props)
        replicas = _replicas(deployment, autoscalers)
        if replicas < minimum:
            report_violation(
                f"{app} Deployment {name} runs {replicas} replica(s); at least {minimum} keep the request path up "
                "through a node drain or a rollout.",
                deployment.urn,
            )
        if not _covered_by_budget(deployment, budgets):
            report_violation(
                f"{app} Deployment {name} has no PodDisruptionBudget selecting its pods: a node drain may evict "
                "every replica at once.",
                deployment.urn,
            )


def _wildcard_origins(origins) -> bool:
    return isinstance(origins, list) and any(str(o).strip() == "*" or "*" in str(o) for o in origins)


def _no_wildcard_cors(args, report_violation):
    if args.resource_type == CONFIG_MAP and dig(args.props, "metadata", "labels", NAME_LABEL) == "gateway":
        for key, text in (args.props.get("data") or {}).items():
            try:
                document = yaml.safe_load(text)
            except yaml.YAMLError:
                continue
            if isinstance(document, dict) and _wildcard_origins(document.get("cors_origins")):
                report_violation(
                    f"gateway config {object_name(args.props)}:{key} allows CORS from any origin: list the exact "
                    "origins of the browser apps (llm-edge:gateway.corsOrigins)."
                )
    elif args.resource_type == ACCESS_APP:
        cors = args.props.get("corsHeaders") or {}
        if cors.get("allowAllOrigins") is True or _wildcard_origins(cors.get("allowedOrigins")):
            report_violation(f"Access application {args.props.get('name')} allows CORS from any origin: list exact origins.")


prod_availability = StackValidationPolicy(
    name="prod-availability",
    description="Connector and gateway run at least minReplicas replicas, each with a PodDisruptionBudget.",
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={
            "minReplicas": {"type": "integer", "minimum": 1, "default": 2},
            "workloads": {
                "type": "array",
                "items": {"type": "string"},
                "default": ["cloudflared", "gateway"],
                "description": "app.kubernetes.io/name of the Deployments on the request path",
            },
        }
    ),
    validate=_highly_available,
)
no_wildcard_cors = ResourceValidationPolicy(
    name="no-wildcard-cors",
    description="CORS names exact origins, never '*'.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_no_wildcard_cors,
)

POLICIES = [prod_availability, no_wildcard_cors]
