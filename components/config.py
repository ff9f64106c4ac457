"""Typed stack config: parsed once, before any resource is registered.

Every key lives under the `llm-edge:` namespace of the stack's config. Values are validated by
pydantic; each problem becomes one line naming the full key (`llm-edge:clusters.blue.connector.
replicas`), the value given and what is allowed, and all problems are reported together.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, Optional

import pulumi
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

PROJECT = "llm-edge"

HOSTNAME_PATTERN = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
# `[registry[:port]/]path[:tag][@sha256:digest]`, lower-case path as registries require.
IMAGE_PATTERN = r"^([a-z0-9.-]+(:[0-9]+)?/)?[a-z0-9._/-]+(:[0-9A-Za-z_][0-9A-Za-z_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"


class ConfigError(pulumi.RunError):
    """A stack config problem. RunError makes Pulumi print the message without a traceback."""


class Model(BaseModel):
    """Base for config sections: camelCase keys, unknown keys rejected, immutable."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


Hostname = Annotated[str, Field(pattern=HOSTNAME_PATTERN, max_length=253)]
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL_PATTERN)]
Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN)]


def is_pinned_image(image: str) -> bool:
    """True when the image names a tag other than `latest`, or a digest."""
    if not re.match(IMAGE_PATTERN, image):
        return False
    name = image.split("@", 1)[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else None
    has_digest = "@sha256:" in image
    return has_digest or (tag is not None and tag != "latest")


def _pinned(image: str) -> str:
    if not is_pinned_image(image):
        raise ValueError(
            f"image {image!r} is not pinned: give an explicit version tag (not 'latest') or a digest"
        )
    return image


PinnedImage = Annotated[str, AfterValidator(_pinned)]


class Resources(Model):
    """Container requests and limits (Kubernetes quantities)."""

    cpu_request: Quantity = "50m"
    memory_request: Quantity = "64Mi"
    cpu_limit: Quantity = "500m"
    memory_limit: Quantity = "256Mi"


class Taint(Model):
    """A node taint that pods of this stack must tolerate (operator Exists when no value)."""

    key: Annotated[str, Field(min_length=1)]
    value: Optional[str] = None
    effect: Optional[Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]] = None


# GPU nodes are usually tainted; the connector may run anywhere, including there.
DEFAULT_TOLERATED_TAINTS = (
    Taint(key="nvidia.com/gpu"),
    Taint(key="amd.com/gpu"),
    Taint(key="CriticalAddonsOnly"),
)


class Connector(Model):
    """The cloudflared Deployment of one cluster."""

    replicas: Annotated[int, Field(ge=2, le=20)] = 2
    image: PinnedImage = "cloudflare/cloudflared:2025.11.1"
    resources: Resources = Resources()


class Cluster(Model):
    """One Kubernetes cluster: how to reach it and what to run there."""

    # Exactly one of the two: a kubeconfig context on the deploying machine, or the name of a
    # secret stack config key that holds a whole kubeconfig.
    context: Optional[Annotated[str, Field(min_length=1)]] = None
    kubeconfig_config_key: Optional[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]] = None
    namespace: DnsLabel = "llm-edge"
    tolerated_taints: list[Taint] = Field(default_factory=lambda: list(DEFAULT_TOLERATED_TAINTS))
    connector: Connector = Connector()
    # IAM OIDC provider of this cluster (EKS IRSA), used by external-secrets delivery to read
    # only this stack's secrets; without it the External Secrets controller's own identity is used.
    oidc_provider_arn: Optional[Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$")]] = None

    @model_validator(mode="after")
    def _one_way_in(self) -> "Cluster":
        if (self.context is None) == (self.kubeconfig_config_key is None):
            raise ValueError(
                "set exactly one of 'context' (a kubeconfig context) or 'kubeconfigConfigKey' "
                "(a secret config key holding a kubeconfig)"
            )
        return self


class Cloudflare(Model):
    account_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    zone: Hostname


class Edge(Model):
    """Zone-level resources. Only one stack may own them."""

    manage_zone: bool = False
    # Create the zone instead of looking up an existing one (only with manageZone).
    create_zone: bool = False


class Tunnel(Model):
    """Origin settings of the tunnel's ingress rules."""

    # Where cloudflared sends public traffic inside the cluster; `{namespace}` is replaced by the
    # cluster's namespace (for example an existing OpenAI-compatible Service).
    origin_service: Annotated[str, Field(pattern=r"^https?://[^\s/]+(:[0-9]+)?/?$")] = (
        "http://gateway.{namespace}.svc.cluster.local:8080"
    )
    connect_timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 10
    keep_alive_connections: Annotated[int, Field(ge=1, le=1024)] = 100
    keep_alive_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 90


class Secrets(Model):
    """AWS Secrets Manager (system of record) and how secrets reach the clusters."""

    delivery: Literal["direct", "external-secrets"] = "direct"
    # 0 deletes at once; otherwise AWS allows 7 to 30 days.
    recovery_window_days: int = 30
    # A customer-managed key, as an ARN (the reader role's policy names it).
    kms_key_id: Optional[Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$")]] = None
    # Name prefix of every secret of this stack; `{stack}` is replaced by the stack name.
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9/_+=.@{}-]+$")] = "llm-edge/{stack}"
    # Needed by external-secrets delivery (the SecretStore names the region).
    region: Optional[Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")]] = None
    refresh_interval: Annotated[str, Field(pattern=r"^[0-9]+[smh]$")] = "1h"

    @field_validator("recovery_window_days")
    @classmethod
    def _aws_window(cls, days: int) -> int:
        if days != 0 and not 7 <= days <= 30:
            raise ValueError("must be 0 (delete at once) or between 7 and 30 days")
        return days


class Traffic(Model):
    """Which cluster the public hostname sends traffic to."""

    mode: Literal["dns"] = "dns"
    # Defaults to the only cluster when there is exactly one.
    active: Optional[DnsLabel] = None


class StackConfig(Model):
    """The whole `llm-edge:` config of one stack."""

    stack: str = Field(exclude=True)
    cloudflare: Cloudflare
    public_hostname: Hostname
    edge: Edge = Edge()
    tunnel: Tunnel = Tunnel()
    secrets: Secrets = Secrets()
    clusters: Annotated[dict[DnsLabel, Cluster], Field(min_length=1)]
    traffic: Traffic = Traffic()

    @model_validator(mode="after")
    def _cross_checks(self) -> "StackConfig":
        problems = []
        if not self.public_hostname.endswith("." + self.cloudflare.zone):
            problems.append(
                ("publicHostname", self.public_hostname, f"must be a name inside the zone {self.cloudflare.zone}")
            )
        if self.edge.create_zone and not self.edge.manage_zone:
            problems.append(("edge.createZone", True, "needs edge.manageZone: true (only the zone owner creates it)"))
        if self.secrets.delivery == "external-secrets" and self.secrets.region is None:
            problems.append(("secrets.region", None, "is required with secrets.delivery: external-secrets"))
        active = self.traffic.active
        if active is None and len(self.clusters) > 1:
            problems.append(("traffic.active", None, f"is required with several clusters: one of {', '.join(self.clusters)}"))
        elif active is not None and active not in self.clusters:
            problems.append(("traffic.active", active, f"must be a declared cluster: one of {', '.join(self.clusters)}"))
        if problems:
            raise _CrossCheckError(problems)
        return self

    @property
    def secret_prefix(self) -> str:
        return self.secrets.prefix.replace("{stack}", self.stack)

    @property
    def active_cluster(self) -> str:
        return self.traffic.active or next(iter(self.clusters))

    def validation_hostname(self, cluster: str) -> str:
        return f"{cluster}.{self.public_hostname}"

    def origin_service(self, cluster: str) -> str:
        return self.tunnel.origin_service.replace("{namespace}", self.clusters[cluster].namespace)


class _CrossCheckError(ValueError):
    """Problems that span several keys; carries (key, value, message) triples."""

    def __init__(self, problems: list[tuple[str, Any, str]]):
        super().__init__("; ".join(f"{k}: {m}" for k, _, m in problems))
        self.problems = problems


# Top-level config keys, as written in Pulumi.<stack>.yaml (without the `llm-edge:` prefix).
TOP_LEVEL_KEYS = tuple(
    field.alias or name for name, field in StackConfig.model_fields.items() if name != "stack"
)


def _format_value(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _error_lines(error: ValidationError, raw: dict[str, Any]) -> list[str]:
    lines = []
    for item in error.errors():
        ctx_error = (item.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _CrossCheckError):
            for key, value, message in ctx_error.problems:
                lines.append(f"{PROJECT}:{key}: {message} (got {_format_value(value)})")
            continue
        key = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            lines.append(f"{PROJECT}:{key}: is required")
        elif item["type"] == "extra_forbidden":
            lines.append(f"{PROJECT}:{key}: is not a known setting (check the spelling)")
        else:
            lines.append(f"{PROJECT}:{key}: {message} (got {_format_value(item.get('input'))})")
    return lines


def parse_stack_config(stack: str, raw: dict[str, Any]) -> StackConfig:
    """Validate a dict of top-level keys (camelCase, no prefix). Raises ConfigError listing all problems."""
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    lines = [f"{PROJECT}:{key}: is not a known setting (known: {', '.join(TOP_LEVEL_KEYS)})" for key in unknown]
    known = {k: v for k, v in raw.items() if k in TOP_LEVEL_KEYS}
    try:
        config = StackConfig.model_validate({**known, "stack": stack})
    except ValidationError as error:
        lines.extend(_error_lines(error, known))
        config = None
    if lines:
        raise ConfigError("invalid stack config:\n  " + "\n  ".join(lines))
    return config


def read_project_config() -> dict[str, Any]:
    """Every `llm-edge:` key of the running stack, JSON values decoded."""
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = PROJECT + ":"
    raw: dict[str, Any] = {}
    for full_key in sorted(k for k in keys if k.startswith(prefix)):
        value = runtime_config.get_config(full_key)
        try:
            raw[full_key[len(prefix):]] = json.loads(value)
        except (TypeError, json.JSONDecodeError):
            raw[full_key[len(prefix):]] = value
    return raw


def load_stack_config() -> StackConfig:
    """Parse the running stack's config. Call before registering any resource."""
    raw = read_project_config()
    # A secret key that only holds a kubeconfig is read later, as a secret, not parsed here.
    referenced = {
        c.get("kubeconfigConfigKey")
        for c in (raw.get("clusters") or {}).values()
        if isinstance(c, dict)
    }
    return parse_stack_config(pulumi.get_stack(), {k: v for k, v in raw.items() if k not in referenced})
