"""`make preflight STACK=<stack> [SET=...]`: what must exist before `pulumi up`, read off the render.

Sections: Cloudflare (plan features and add-ons the stack uses, the API token's permissions),
AWS (the IAM actions the deployer needs), the secret config keys (each, and whether it is set),
and each cluster's prerequisites. Every line is derived from what the stack registers, so it
changes when the stack does. Exit 1 when something the stack can know is missing (a secret
config key set neither in the stack file nor in the environment); 2 on a config error.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import yaml

from components.config import StackSettings, decode_project_config, preview_number
from components.config.stack import settings_from_raw
from offline.engine import StackRun
from offline.render import kubernetes_objects, unwrap
from offline.secret_config import SecretConfigKey

# (scope, permission group) of a Cloudflare API token, by the resource type or invoke that needs it
# "Edit" in the dashboard, "Write" in the API (https://developers.cloudflare.com/fundamentals/api/reference/permissions/);
# each group is the one the provider docs list under "Accepted Permissions" for that resource.
TOKEN_PERMISSIONS: dict[str, tuple[str, str, str]] = {
    "cloudflare:index/getZone:getZone": ("Zone", "Zone", "Read"),
    "cloudflare:index/zone:Zone": ("Zone", "Zone", "Edit"),
    "cloudflare:index/zoneSetting:ZoneSetting": ("Zone", "Zone Settings", "Edit"),
    "cloudflare:index/dnsRecord:DnsRecord": ("Zone", "DNS", "Edit"),
    "cloudflare:index/ruleset:Ruleset": ("Zone", "Zone WAF", "Edit"),
    "cloudflare:index/certificatePack:CertificatePack": ("Zone", "SSL and Certificates", "Edit"),
    "cloudflare:index/loadBalancer:LoadBalancer": ("Zone", "Load Balancers", "Edit"),
    "cloudflare:index/loadBalancerPool:LoadBalancerPool": ("Account", "Load Balancing: Monitors and Pools", "Edit"),
    "cloudflare:index/loadBalancerMonitor:LoadBalancerMonitor": ("Account", "Load Balancing: Monitors and Pools", "Edit"),
    "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared": ("Account", "Cloudflare Tunnel", "Edit"),
    "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig": ("Account", "Cloudflare Tunnel", "Edit"),
    "cloudflare:index/getZeroTrustTunnelCloudflaredToken:getZeroTrustTunnelCloudflaredToken": ("Account", "Cloudflare Tunnel", "Edit"),
    "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication": ("Account", "Access: Apps and Policies", "Edit"),
    "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy": ("Account", "Access: Apps and Policies", "Edit"),
    "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken": ("Account", "Access: Service Tokens", "Edit"),
    "cloudflare:index/notificationPolicy:NotificationPolicy": ("Account", "Notifications", "Edit"),
    "cloudflare:index/notificationPolicyWebhooks:NotificationPolicyWebhooks": ("Account", "Notifications", "Edit"),
}

# IAM actions of the deployer, by resource type or invoke: the calls the AWS provider makes to create,
# read, update and delete each (terraform-provider-aws, which pulumi-aws bridges; CreateSecret with
# tags also needs TagResource: https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html).
AWS_ACTIONS: dict[str, tuple[str, ...]] = {
    "aws:secretsmanager/secret:Secret": (
        "secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:UntagResource",
        "secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy", "secretsmanager:UpdateSecret",
        "secretsmanager:DeleteSecret",
    ),
    "aws:secretsmanager/secretVersion:SecretVersion": (
        "secretsmanager:PutSecretValue", "secretsmanager:GetSecretValue", "secretsmanager:ListSecretVersionIds",
        "secretsmanager:UpdateSecretVersionStage", "secretsmanager:DescribeSecret",
    ),
    "aws:secretsmanager/getSecretVersion:getSecretVersion": ("secretsmanager:GetSecretValue",),
    "aws:iam/role:Role": (
        "iam:CreateRole", "iam:TagRole", "iam:GetRole", "iam:UpdateRole", "iam:UpdateAssumeRolePolicy",
        "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole", "iam:DeleteRole",
    ),
    "aws:iam/rolePolicy:RolePolicy": ("iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy"),
}
# The provider asks who it is when it starts.
AWS_ALWAYS = ("sts:GetCallerIdentity",)
KMS_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")

GPU_PREREQUISITES = {
    "nvidia.com/gpu": "the NVIDIA device plugin (or GPU Operator) advertising nvidia.com/gpu, with GPU feature "
                      "discovery labelling nvidia.com/gpu.product",
    "amd.com/gpu": "the AMD GPU device plugin advertising amd.com/gpu, with the AMD node labeller labelling "
                   "amd.com/gpu.product-name",
}


@dataclass(frozen=True)
class Line:
    text: str
    missing: bool = False


def report(run: StackRun, keys: list[SecretConfigKey], environ: dict[str, str] | None = None) -> dict[str, list[Line]]:
    """The preflight sections of one rendered stack."""
    environ = dict(os.environ) if environ is None else environ
    config = _settings(run)
    sections = {
        "Cloudflare": cloudflare_lines(run, config),
        "AWS": aws_lines(run, config),
        "Secret config keys": secret_key_lines(keys, environ),
    }
    for cluster, objects in kubernetes_objects(run).items():
        sections[f"Cluster {cluster}"] = cluster_lines(run, cluster, objects)
    return sections


def cloudflare_lines(run: StackRun, config: StackSettings) -> list[Line]:
    cloudflare = config.cloudflare
    types = {r.type for r in run.resources} | {token for token, _ in run.invokes}
    lines = [Line(f"zone {cloudflare.zone} on the {cloudflare.plan} plan; add-ons: {', '.join(cloudflare.add_ons) or 'none'}")]
    if "cloudflare:index/ruleset:Ruleset" in types:
        lines.append(Line(
            "rate limiting rule in the zone's http_ratelimit entry point (one per zone): if "
            f"GET /zones/<zone id>/rulesets/phases/http_ratelimit/entrypoint already returns one, import it first: "
            f"pulumi import cloudflare:index/ruleset:Ruleset edge-protection-rate-limit zones/<zone id>/<ruleset id> "
            f"--parent {_urn_of(run, 'llm-edge:edge:EdgeProtection')}"))
    if "cloudflare:index/loadBalancer:LoadBalancer" in types:
        lines.append(Line("Load Balancing add-on on the account (weighted traffic)"))
    if "cloudflare:index/certificatePack:CertificatePack" in types:
        [pack] = [r for r in run.resources if r.type == "cloudflare:index/certificatePack:CertificatePack"]
        lines.append(Line(f"Advanced Certificate Manager on the zone: this stack orders {', '.join(unwrap(pack.inputs)['hosts'])}"))
    elif "advancedCertificateManager" in cloudflare.add_ons:
        lines.append(Line("an advanced certificate covering this stack's deeper hostnames, ordered by the stack that owns the zone"))
    if "cloudflare:index/notificationPolicyWebhooks:NotificationPolicyWebhooks" in types:
        lines.append(Line("the alerts webhook answers 2xx to a POST before pulumi up: Cloudflare tests it when it saves the "
                          "destination (a zone on Pro or above in the account)"))
    lines.append(Line("API token (CLOUDFLARE_API_TOKEN): " + "; ".join(token_permissions(types))))
    return lines


def token_permissions(types: set[str]) -> list[str]:
    """The token's permission groups for what a stack registers, as the dashboard names them."""
    groups = sorted({TOKEN_PERMISSIONS[t] for t in types & set(TOKEN_PERMISSIONS)})
    return [f"{scope} > {group} > {level}" for scope, group, level in groups]


def aws_lines(run: StackRun, config: StackSettings) -> list[Line]:
    types = {r.type for r in run.resources} | {token for token, _ in run.invokes}
    actions = set(AWS_ALWAYS)
    for token in types & set(AWS_ACTIONS):
        actions.update(AWS_ACTIONS[token])
    roles = sorted(unwrap(r.inputs)["name"] for r in run.resources if r.type == "aws:iam/role:Role")
    lines = [Line(f"IAM actions of the deployer: {', '.join(sorted(actions))}"),
             Line(f"on secrets arn:aws:secretsmanager:<region>:<account>:secret:{config.secret_prefix}/*"
                  + (f" and the IAM roles {', '.join(roles)}" if roles else ""))]
    if config.secrets.kms_key_id:
        lines.append(Line(f"{', '.join(KMS_ACTIONS)} on the key {config.secrets.kms_key_id}"))
    if preview_number(run.stack) is not None:
        lines.append(Line(f"secretsmanager:GetSecretValue on {config.secrets.prefix_for(config.preview.source_stack)}/vllm-api-key "
                          "(the preview borrows the source stack's vLLM key)"))
    return lines


def secret_key_lines(keys: list[SecretConfigKey], environ: dict[str, str]) -> list[Line]:
    lines = []
    for key in keys:
        if key.in_stack_file:
            lines.append(Line(f"{key.key}: set in the stack file"))
        elif environ.get(key.env):
            lines.append(Line(f"{key.key}: from ${key.env} (set it: python -m offline secret-config --stack <stack> --set-from-env)"))
        else:
            lines.append(Line(f"{key.key}: not set: pulumi config set --secret {key.key} <value> (CI: repository secret {key.env})",
                              missing=True))
    return lines or [Line("none")]


def cluster_lines(run: StackRun, cluster: str, objects: list[dict[str, Any]]) -> list[Line]:
    providers = [r for r in run.resources if r.type == "pulumi:providers:kubernetes" and r.name == cluster]
    provider: dict[str, Any] = unwrap(providers[0].inputs) if providers else {}
    lines = [Line(f"kubeconfig context {provider['context']}" if provider.get("context") else "kubeconfig from the stack's secret config")]
    for gpu_resource, products in sorted(_gpu_needs(objects).items()):
        lines.append(Line(GPU_PREREQUISITES[gpu_resource] + (f" (selected: {', '.join(sorted(products))})" if products else "")))
    kinds = {o["kind"] for o in objects}
    if "ExternalSecret" in kinds:
        lines.append(Line("External Secrets Operator v0.17 or later (serves external-secrets.io/v1)"))
        if not any(o["kind"] == "ServiceAccount" and "eks.amazonaws.com/role-arn" in o["metadata"].get("annotations", {})
                   for o in objects):
            lines.append(Line("the External Secrets controller's own AWS credentials may read this stack's secrets "
                              "(no oidcProviderArn: no IAM role for the SecretStore)"))
    monitoring = [o for o in objects if o["kind"] in ("PrometheusRule", "PodMonitor")]
    if monitoring:
        lines.append(Line("prometheus-operator CRDs (kube-prometheus-stack) and a Prometheus selecting "
                          + _selected_by(monitoring)))
    dashboards = [o for o in objects if o["kind"] == "ConfigMap"
                  and o["metadata"]["labels"].get("app.kubernetes.io/component") == "dashboards"]
    if dashboards:
        lines.append(Line(f"Grafana's dashboard sidecar watching ConfigMaps labelled {_selected_by(dashboards)} in this "
                          f"namespace ({len(dashboards)} dashboards; kube-prometheus-stack: sidecar.dashboards.searchNamespace)"))
    writers = _claim_writers(objects)
    for claim in (o for o in objects if o["kind"] == "PersistentVolumeClaim"):
        spec, claim_name = claim["spec"], claim["metadata"]["name"]
        group = writers.get(claim_name)
        lines.append(Line(f"storage class {spec.get('storageClassName') or '(the default)'} offering {', '.join(spec['accessModes'])} "
                          f"for {claim_name}"
                          + (f", writable for group {group} (fsGroup; NFS-style classes such as EFS need it in their uid/gid "
                             "parameters)" if group is not None else "")))
    gateway: dict[str, Any] = next((yaml.safe_load(o["data"]["config.yaml"]) for o in objects
                    if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "gateway"), {})
    if "url_env" in gateway.get("shared_limits", {}):
        lines.append(Line("the gateway pods reach the external limit store (gateway.sharedLimits.urlConfigKey): Redis or "
                          "Valkey, one primary endpoint (not cluster mode), its port open to this cluster's nodes"))
    for namespace in (o for o in objects if o["kind"] == "Namespace"):
        labels = namespace["metadata"].get("labels", {})
        lines.append(Line(f"namespace {namespace['metadata']['name']}: Pod Security {labels.get('pod-security.kubernetes.io/enforce')} "
                          "enforced (admission must not be stricter)"))
    return lines


def _selected_by(objects: list[dict[str, Any]]) -> str:
    """The labels other tools select these objects by (the stack's own app.kubernetes.io/* aside)."""
    return ", ".join(sorted({f"{k}={v}" for o in objects for k, v in o["metadata"].get("labels", {}).items()
                             if not k.startswith("app.kubernetes.io/")}))


def _claim_writers(objects: list[dict[str, Any]]) -> dict[str, int]:
    """Claim name -> the fsGroup of the non-root pods that write to it."""
    writers = {}
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        group = (spec.get("securityContext") or {}).get("fsGroup")
        for volume in spec.get("volumes", []):
            if group is not None and "persistentVolumeClaim" in volume:
                writers[volume["persistentVolumeClaim"]["claimName"]] = group
    return writers


def render(sections: dict[str, list[Line]]) -> str:
    out = []
    for title, lines in sections.items():
        out.append(f"{title}:")
        out += [f"  {'MISSING ' if line.missing else ''}- {line.text}" for line in lines]
    return "\n".join(out)


def _gpu_needs(objects: list[dict[str, Any]]) -> dict[str, set[str]]:
    needs: dict[str, set[str]] = defaultdict(set)
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        for container in spec["containers"]:
            for resource in container.get("resources", {}).get("limits", {}):
                if resource in GPU_PREREQUISITES:
                    terms = (spec.get("affinity") or {}).get("nodeAffinity", {}).get(
                        "requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", [])
                    needs[resource].update(v for t in terms for e in t.get("matchExpressions", []) for v in e["values"])
    return needs


def _settings(run: StackRun) -> StackSettings:
    return settings_from_raw(run.stack, decode_project_config(run.config))


def _urn_of(run: StackRun, type_token: str) -> str:
    return next(r.urn for r in run.resources if r.type == type_token)
