"""Secrets: recoverable when deleted by mistake, and credentials never outside a secret store."""

from __future__ import annotations

import re

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ResourceValidationPolicy

from .kube import containers, object_name, pod_spec

AWS_SECRET = "aws:secretsmanager/secret:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
# AWS's default when the argument is omitted.
AWS_DEFAULT_RECOVERY_DAYS = 30
# Names that hold a credential (env vars, ConfigMap keys); `*_FILE` and the like only point at one.
CREDENTIAL_NAME = re.compile(r"(?i)(^|[_.-])(token|secret|password|passwd|api[_-]?key|key|credentials?)([_.-]|$)")
POINTER_SUFFIX = re.compile(r"(?i)[_.-](file|path|dir|env|name|ref)$")
TOKEN_FLAGS = ("--token", "--cred-file", "--credentials-contents")


def looks_like_credential(name: str) -> bool:
    return bool(CREDENTIAL_NAME.search(name)) and not POINTER_SUFFIX.search(name)


def _recovery_window(args, report_violation):
    if args.resource_type != AWS_SECRET:
        return
    minimum = args.get_config().get("minimumDays", 7)
    days = args.props.get("recoveryWindowInDays", AWS_DEFAULT_RECOVERY_DAYS)
    if days < minimum:
        report_violation(
            f"secret {args.props.get('name')} is deleted with a recovery window of {days} days; this stack requires "
            f"at least {minimum} (llm-edge:secrets.recoveryWindowDays) so a mistaken delete can be undone."
        )


def _credentials_in_secrets(args, report_violation):
    name = object_name(args.props)
    spec = pod_spec(args.resource_type, args.props)
    if spec is not None:
        for container in containers(spec):
            for env in container.get("env") or []:
                if looks_like_credential(env.get("name", "")) and "value" in env:
                    report_violation(
                        f"{name}: container {container.get('name')} sets {env['name']} as a literal value: read it "
                        "from a Secret (valueFrom.secretKeyRef) so it never sits in the Deployment spec."
                    )
            words = [str(w) for w in [*(container.get("command") or []), *(container.get("args") or [])]]
            for flag in TOKEN_FLAGS:
                if any(w == flag or w.startswith(flag + "=") for w in words):
                    report_violation(
                        f"{name}: container {container.get('name')} passes {flag} on the command line, where "
                        "`kubectl get` and process lists show it: use TUNNEL_TOKEN from a Secret."
                    )
    if args.resource_type == CONFIG_MAP:
        for key in (args.props.get("data") or {}):
            if looks_like_credential(key):
                report_violation(
                    f"ConfigMap {name} has a key {key!r} that looks like a credential: ConfigMaps are not secret; "
                    "put it in a Secret (or AWS Secrets Manager)."
                )


secrets_recovery_window = ResourceValidationPolicy(
    name="secrets-recovery-window",
    description="Secrets Manager secrets keep a recovery window of at least minimumDays days.",
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={"minimumDays": {"type": "integer", "minimum": 0, "maximum": 30, "default": 7}}
    ),
    validate=_recovery_window,
)
credentials_in_secrets = ResourceValidationPolicy(
    name="credentials-in-secrets",
    description="Tunnel tokens and keys reach workloads only from Secrets: never literal env values, flags or ConfigMaps.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_credentials_in_secrets,
)

POLICIES = [secrets_recovery_window, credentials_in_secrets]
