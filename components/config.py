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


GATEWAY_SERVICE_URL = "http://gateway.{namespace}.svc.cluster.local:8080"


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


GPU_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
# Labels set by each vendor's GPU feature discovery / node labeller, naming the GPU model.
GPU_PRODUCT_LABEL = {"nvidia": "nvidia.com/gpu.product", "amd": "amd.com/gpu.product-name"}


class Gpu(Model):
    """The GPU nodes of one cluster."""

    vendor: Literal["nvidia", "amd"] = "nvidia"
    # Taints of the GPU nodes that vLLM pods tolerate; default: the vendor's resource name.
    taints: Optional[list[Taint]] = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    # Schedule only on these GPU products (node affinity on the vendor's product label).
    products: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)

    @property
    def resource_name(self) -> str:
        return GPU_RESOURCE[self.vendor]

    @property
    def product_label(self) -> str:
        return GPU_PRODUCT_LABEL[self.vendor]

    @property
    def tolerated_taints(self) -> list[Taint]:
        return list(self.taints) if self.taints is not None else [Taint(key=self.resource_name)]


class ModelOverride(Model):
    """Per-cluster changes to a model: another GPU count or image (e.g. a ROCm build on AMD)."""

    replicas: Optional[Annotated[int, Field(ge=0, le=64)]] = None
    gpus_per_replica: Optional[Annotated[int, Field(ge=1, le=16)]] = None
    tensor_parallel_size: Optional[Annotated[int, Field(ge=1, le=16)]] = None
    image: Optional[PinnedImage] = None


class Cluster(Model):
    """One Kubernetes cluster: how to reach it and what to run there."""

    # Exactly one of the two: a kubeconfig context on the deploying machine, or the name of a
    # secret stack config key that holds a whole kubeconfig.
    context: Optional[Annotated[str, Field(min_length=1)]] = None
    kubeconfig_config_key: Optional[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]] = None
    namespace: DnsLabel = "llm-edge"
    tolerated_taints: list[Taint] = Field(default_factory=lambda: list(DEFAULT_TOLERATED_TAINTS))
    connector: Connector = Connector()
    gpu: Gpu = Gpu()
    # Model name -> overrides for this cluster; a model not listed runs with its own settings.
    models: dict[str, ModelOverride] = Field(default_factory=dict)
    # false: the cluster stays deployed with its tunnel and validation hostname but gets no public
    # traffic (it cannot be traffic.active, has no weight and no load balancer pool).
    enabled: bool = True
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


class RateLimit(Model):
    """Cloudflare rate limiting of the API hostname, counted per client IP (and Cloudflare data centre)."""

    requests_per_period: Annotated[int, Field(ge=1, le=1_000_000)] = 600
    # Cloudflare accepts only these periods and timeouts (the free plan: 10 seconds).
    period_seconds: Literal[10, 60, 120, 300, 600, 3600] = 60
    mitigation_timeout_seconds: Literal[0, 10, 60, 120, 300, 600, 3600, 86400] = 60


class Access(Model):
    """Cloudflare Access in front of the API: only the listed machine clients (service tokens) get through."""

    # Machine client names; each gets a service token whose id and secret go to Secrets Manager.
    service_tokens: Annotated[list[DnsLabel], Field(min_length=1)]
    # How long a token is valid (Cloudflare duration, e.g. 8760h).
    token_duration: Annotated[str, Field(pattern=r"^[0-9]+h$")] = "8760h"


class Edge(Model):
    """Zone-level resources. Only one stack may own them."""

    manage_zone: bool = False
    # Create the zone instead of looking up an existing one (only with manageZone).
    create_zone: bool = False
    # Edge protection of the API hostname (zone-level: only with manageZone).
    rate_limit: Optional[RateLimit] = None
    access: Optional[Access] = None


class Preview(Model):
    """A pull-request preview stack `pr-<N>`, derived from dev's config (docs/previews.md).

    The workflow copies dev's config into the new stack and sets `enabled`, `number` and
    `gatewayImage`; dev's own config may set `domain`. `components/preview.py` applies it.
    """

    enabled: bool = False
    number: Optional[Annotated[int, Field(ge=1)]] = None
    # Preview hostnames are `pr-<N>.<domain>`; default: the zone (covered by its universal certificate).
    domain: Optional[Hostname] = None
    # The gateway image built from the pull request.
    gateway_image: Optional[PinnedImage] = None
    # Namespace of dev's model Services the preview's gateway routes to; default: dev's namespace.
    models_namespace: Optional[DnsLabel] = None
    # The stack whose models (and vLLM API key, read from its AWS secret) the preview uses.
    source_stack: DnsLabel = "dev"


class Tunnel(Model):
    """Origin settings of the tunnel's ingress rules."""

    # Where cloudflared sends public traffic; default: the gateway Service. Set it to front an
    # existing OpenAI-compatible service without the gateway; `{namespace}` is replaced by the
    # cluster's namespace.
    origin_service: Optional[Annotated[str, Field(pattern=r"^https?://[^\s/]+(:[0-9]+)?/?$")]] = None
    connect_timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 10
    keep_alive_connections: Annotated[int, Field(ge=1, le=1024)] = 100
    keep_alive_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 90
    # For an https origin with a self-signed certificate in dev only (policy tunnel-origin-tls).
    no_tls_verify: bool = False


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


class ModelCache(Model):
    """Where vLLM keeps downloaded weights: a PersistentVolumeClaim, or emptyDir (re-downloads on restart)."""

    type: Literal["pvc", "emptyDir"] = "pvc"
    size: Quantity = "100Gi"
    storage_class: Optional[Annotated[str, Field(min_length=1)]] = None
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = "ReadWriteOnce"


class ServedModel(Model):
    """One model served by vLLM in every cluster (replicas may be overridden per cluster)."""

    served_name: Optional[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")]] = None
    hugging_face_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")]
    image: PinnedImage = "vllm/vllm-openai:v0.11.0"
    replicas: Annotated[int, Field(ge=0, le=64)] = 1
    gpus_per_replica: Annotated[int, Field(ge=1, le=16)] = 1
    tensor_parallel_size: Annotated[int, Field(ge=1, le=16)] = 1
    max_model_len: Annotated[int, Field(ge=256, le=10_000_000)] = 8192
    gpu_memory_utilization: Annotated[float, Field(gt=0.1, le=0.99)] = 0.9
    extra_args: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    cache: ModelCache = ModelCache()
    shm_size: Quantity = "8Gi"
    # Time allowed for download and load before the startup probe gives up.
    startup_budget_minutes: Annotated[int, Field(ge=30, le=24 * 60)] = 45
    resources: Resources = Resources(cpu_request="4", memory_request="32Gi", cpu_limit="16", memory_limit="64Gi")


class Backend(Model):
    """An OpenAI-compatible server that already exists (GPUStack, Ollama, another vLLM)."""

    # A base URL without path: clients' paths (/v1/...) are appended to it.
    url: Annotated[str, Field(pattern=r"^https?://[^\s/:]+(:[0-9]+)?/?$")]
    models: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    # A secret stack config key holding the backend's API key (injected by the gateway).
    api_key_config_key: Optional[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]] = None
    # A backend that checks no key must never be published by a hostname route without saying so.
    authenticates: bool = False


class Route(Model):
    """An extra public hostname sent straight to one backend or model by the tunnel."""

    hostname: Hostname
    backend: DnsLabel
    # Publish a backend that checks no API key (e.g. Ollama); only behind Cloudflare Access.
    allow_unauthenticated: bool = False


class GatewayClient(Model):
    """An API client: its key is generated, stored in AWS Secrets Manager, and only its hash reaches the cluster."""

    name: DnsLabel
    # Model names the key may use, or ["*"].
    models: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] = ["*"]
    rpm: Optional[Annotated[int, Field(ge=1)]] = None
    tpm: Optional[Annotated[int, Field(ge=1)]] = None


class Gateway(Model):
    """The API-key gateway between the tunnel and the models (see gateway/README.md)."""

    enabled: bool = True
    image: PinnedImage = "ghcr.io/llm-edge/llm-edge-gateway:0.1.0"
    replicas: Annotated[int, Field(ge=2, le=50)] = 2
    max_replicas: Annotated[int, Field(ge=2, le=100)] = 6
    target_cpu_utilization: Annotated[int, Field(ge=10, le=100)] = 70
    clients: list[GatewayClient] = Field(default_factory=list)
    cors_origins: list[Annotated[str, Field(pattern=r"^https?://[a-z0-9.-]+(:[0-9]+)?$")]] = Field(default_factory=list)
    max_body_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    upstream_read_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 300
    drain_grace_seconds: Annotated[int, Field(ge=1, le=600)] = 30
    resources: Resources = Resources(cpu_request="250m", memory_request="128Mi", cpu_limit="1", memory_limit="512Mi")


class NetworkPolicies(Model):
    enabled: bool = True
    # Prometheus runs here; only it may scrape the metrics ports.
    monitoring_namespace: DnsLabel = "monitoring"
    # Let the gateways of pull-request previews (namespaces labelled disposable) reach this
    # stack's vLLM; for the stack previews are made from (dev).
    preview_gateways: bool = False


class LoadBalancer(Model):
    """The Cloudflare Load Balancer of `traffic.mode: weighted` (needs the Load Balancing add-on)."""

    # The gateway's liveness path, probed through each cluster's tunnel with the public Host header.
    monitor_path: Annotated[str, Field(pattern=r"^/[^\s?#]*$")] = "/healthz"
    monitor_type: Literal["https", "http"] = "https"
    # Cloudflare's minimum interval depends on the plan (60 s on the entry Load Balancing plan).
    interval_seconds: Annotated[int, Field(ge=10, le=3600)] = 60
    timeout_seconds: Annotated[int, Field(ge=1, le=10)] = 5
    retries: Annotated[int, Field(ge=0, le=5)] = 2
    # One code (`200`) or a class (`2xx`), as Cloudflare monitors accept them.
    expected_codes: Annotated[str, Field(pattern=r"^[1-5]([0-9][0-9]|xx)$")] = "200"
    # Every policy listed uses the weights (`random_steering`); the others would ignore them.
    steering_policy: Literal["random", "least_outstanding_requests", "least_connections"] = "random"


class Traffic(Model):
    """Which cluster(s) the public hostname sends traffic to (docs/migration.md)."""

    # dns: a proxied CNAME to `active`'s tunnel. weighted: a Cloudflare Load Balancer over every
    # enabled cluster, with the weights below.
    mode: Literal["dns", "weighted"] = "dns"
    # Defaults to the only cluster when there is exactly one.
    active: Optional[DnsLabel] = None
    # Relative weights (percentages when they sum to 100); an enabled cluster not listed gets 0:
    # its pool exists and is monitored but receives no traffic.
    weights: dict[DnsLabel, Annotated[int, Field(ge=0, le=100)]] = Field(default_factory=dict)
    load_balancer: LoadBalancer = LoadBalancer()


# Prometheus durations as `for` accepts them in a PrometheusRule (e.g. 90s, 5m, 1h).
PromDuration = Annotated[str, Field(pattern=r"^[0-9]+(s|m|h)$")]
# A Kubernetes label key (optional DNS prefix) and value.
LabelKey = Annotated[str, Field(pattern=r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")]
LabelValue = Annotated[str, Field(pattern=r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")]
# kube-prometheus-stack's Prometheus selects rules and monitors by its Helm release label.
DEFAULT_PROMETHEUS_SELECTOR = {"release": "kube-prometheus-stack"}


class Hold(Model):
    """An alert without a threshold: how long its condition must hold before it fires."""

    for_: PromDuration = Field(alias="for")


class Threshold(Model):
    """An alert on a value above `threshold` for `for`."""

    threshold: Annotated[float, Field(gt=0)]
    for_: PromDuration = Field(alias="for")


class RatioThreshold(Threshold):
    """A ratio (0.05 = 5 %) above `threshold` for `for`."""

    threshold: Annotated[float, Field(gt=0, le=1)]


class AlertRules(Model):
    """Thresholds and `for` durations of each alert (docs/alerts.md); a rule given in part keeps the other defaults."""

    tunnel_down: Hold = Hold(for_="2m")
    tunnel_degraded: Hold = Hold(for_="10m")
    tunnel_error_ratio: RatioThreshold = RatioThreshold(threshold=0.05, for_="5m")
    gateway_error_ratio: RatioThreshold = RatioThreshold(threshold=0.05, for_="5m")
    # Seconds, p95 over the gateway's streaming requests.
    gateway_first_token_p95: Threshold = Threshold(threshold=5, for_="10m")
    gateway_no_healthy_upstream: Hold = Hold(for_="2m")
    # Share of all gateway requests answered 429 by the per-client limits.
    gateway_rate_limited_ratio: RatioThreshold = RatioThreshold(threshold=0.1, for_="10m")
    model_no_ready_replica: Hold = Hold(for_="5m")
    # Requests waiting in one vLLM pod's queue.
    vllm_queue_waiting: Threshold = Threshold(threshold=10, for_="5m")
    vllm_kv_cache_usage: RatioThreshold = RatioThreshold(threshold=0.95, for_="10m")
    vllm_preemptions_per_minute: Threshold = Threshold(threshold=1, for_="10m")
    # Seconds, p99 as vLLM measures it.
    vllm_first_token_p99: Threshold = Threshold(threshold=10, for_="10m")
    gpu_pod_pending: Hold = Hold(for_="15m")

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        by_alias = {field.alias or name: name for name, field in cls.model_fields.items()}
        merged = {}
        for key, value in data.items():
            name = by_alias.get(key, key)
            default = cls.model_fields[name].default if name in cls.model_fields else None
            if isinstance(value, dict) and isinstance(default, BaseModel):
                value = {**default.model_dump(by_alias=True), **value}
            merged[key] = value
        return merged


class Alerts(Model):
    """Prometheus alerts in each cluster and Cloudflare's tunnel-health notification (docs/alerts.md)."""

    enabled: bool = False
    # Each part on its own: a PrometheusRule, PodMonitors, the Cloudflare notification policy.
    prometheus_rules: bool = True
    pod_monitors: bool = True
    tunnel_notifications: bool = True
    # Labels the cluster's Prometheus selects PrometheusRules (ruleSelector) and PodMonitors
    # (podMonitorSelector) by.
    rule_labels: dict[LabelKey, LabelValue] = Field(default_factory=lambda: dict(DEFAULT_PROMETHEUS_SELECTOR))
    monitor_labels: dict[LabelKey, LabelValue] = Field(default_factory=lambda: dict(DEFAULT_PROMETHEUS_SELECTOR))
    # Where docs/alerts.md is published; each alert links to its section (`#<alert name, lower case>`).
    runbook_url: Annotated[str, Field(pattern=r"^https?://[^\s#]+$")] = "https://github.com/llm-edge/llm-edge/blob/main/docs/alerts.md"
    # Destinations of the Cloudflare tunnel-health notification (which still fires with the cluster gone).
    emails: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = Field(default_factory=list)
    # A secret config key holding the webhook URL (Slack-style URLs carry their token).
    webhook_url_config_key: Optional[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]] = None
    rules: AlertRules = AlertRules()

    def problems(self) -> list[tuple[str, Any, str]]:
        if self.enabled and self.tunnel_notifications and not (self.emails or self.webhook_url_config_key):
            return [("alerts.emails", [], "alerts.enabled with tunnelNotifications needs a destination: set alerts.emails "
                     "and/or alerts.webhookUrlConfigKey (a secret config key holding the webhook URL), "
                     "or set alerts.tunnelNotifications: false")]
        return []


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
    preview: Preview = Preview()
    models: dict[DnsLabel, ServedModel] = Field(default_factory=dict)
    backends: dict[DnsLabel, Backend] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    network_policies: NetworkPolicies = NetworkPolicies()
    gateway: Gateway = Gateway()
    alerts: Alerts = Alerts()
    # A secret stack config key holding a Hugging Face token (gated models).
    hugging_face_token_config_key: Optional[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]] = None

    @model_validator(mode="after")
    def _cross_checks(self) -> "StackConfig":
        problems = []
        if not self.public_hostname.endswith("." + self.cloudflare.zone):
            problems.append(
                ("publicHostname", self.public_hostname, f"must be a name inside the zone {self.cloudflare.zone}")
            )
        if self.edge.create_zone and not self.edge.manage_zone:
            problems.append(("edge.createZone", True, "needs edge.manageZone: true (only the zone owner creates it)"))
        problems.extend(self._edge_and_preview_problems())
        if self.secrets.delivery == "external-secrets" and self.secrets.region is None:
            problems.append(("secrets.region", None, "is required with secrets.delivery: external-secrets"))
        problems.extend(self._traffic_problems())
        problems.extend(self._model_problems())
        problems.extend(self.alerts.problems())
        if problems:
            raise _CrossCheckError(problems)
        return self

    def _model_problems(self) -> list[tuple[str, Any, str]]:
        problems = []
        for cluster_name, cluster in self.clusters.items():
            for model_name in cluster.models:
                if model_name not in self.models:
                    problems.append((f"clusters.{cluster_name}.models.{model_name}", model_name,
                                     f"overrides an undeclared model; declared: {', '.join(self.models) or 'none'}"))
            for model_name in self.models:
                plan = self.model_plan(model_name, cluster_name)
                key = f"clusters.{cluster_name}.models.{model_name}" if model_name in cluster.models else f"models.{model_name}"
                if plan.gpus_per_replica % plan.tensor_parallel_size:
                    problems.append((f"{key}.tensorParallelSize", plan.tensor_parallel_size,
                                     f"must divide gpusPerReplica ({plan.gpus_per_replica})"))
                cache = self.models[model_name].cache
                if cache.type == "pvc" and cache.access_mode == "ReadWriteOnce" and plan.replicas > 1:
                    problems.append((f"models.{model_name}.cache.accessMode", "ReadWriteOnce",
                                     f"one ReadWriteOnce volume cannot serve {plan.replicas} replicas in cluster "
                                     f"{cluster_name}: use ReadWriteMany (with a storageClass that supports it) or type emptyDir"))
        served = self.served_model_names
        for name in sorted({x for x in served if served.count(x) > 1}):
            problems.append(("models", name, "is served by more than one model or backend; each model name needs one home"))
        for name in set(self.models) & set(self.backends):
            problems.append((f"backends.{name}", name, "has the same name as a model; rename one"))
        problems.extend(self._gateway_problems())
        hostnames = [self.public_hostname] + [self.validation_hostname(c) for c in self.clusters]
        for index, route in enumerate(self.routes):
            key = f"routes[{index}]"
            if route.hostname in hostnames:
                problems.append((f"{key}.hostname", route.hostname, "is already used by another route or by the stack"))
            hostnames.append(route.hostname)
            if not route.hostname.endswith("." + self.cloudflare.zone):
                problems.append((f"{key}.hostname", route.hostname, f"must be a name inside the zone {self.cloudflare.zone}"))
            if route.backend not in self.models and route.backend not in self.backends:
                known = ", ".join([*self.models, *self.backends]) or "none declared"
                problems.append((f"{key}.backend", route.backend, f"must name a model or backend ({known})"))
            elif route.backend in self.backends and not (self.backends[route.backend].authenticates or route.allow_unauthenticated):
                problems.append((f"{key}.backend", route.backend,
                                 "checks no API key: set backends.<name>.authenticates: true if it does, "
                                 "or allowUnauthenticated: true on the route if it is protected otherwise"))
        return problems

    def _traffic_problems(self) -> list[tuple[str, Any, str]]:
        problems = []
        traffic = self.traffic
        enabled = self.enabled_clusters
        if not enabled:
            problems.append(("clusters", sorted(self.clusters), "every cluster has enabled: false; at least one must take public traffic"))
        # A traffic key naming an undeclared cluster is most likely a cluster removed in the same
        # change that still receives traffic: say how to do it in two steps.
        if traffic.active is None and len(self.clusters) > 1 and traffic.mode == "dns":
            problems.append(("traffic.active", None, f"is required with several clusters: one of {', '.join(enabled)}"))
        elif traffic.active is not None and traffic.active not in self.clusters:
            problems.append(("traffic.active", traffic.active,
                             f"names no declared cluster (declared: {', '.join(self.clusters)}). If you removed it while it "
                             f"still receives all the traffic: first set traffic.active to another cluster and pulumi up, "
                             f"then remove the cluster in a second change"))
        elif traffic.active is not None and traffic.active not in enabled:
            problems.append(("traffic.active", traffic.active,
                             f"is disabled (clusters.{traffic.active}.enabled: false): pick an enabled cluster "
                             f"({', '.join(enabled) or 'none'}) or enable it"))
        for cluster, weight in traffic.weights.items():
            if cluster not in self.clusters:
                problems.append((f"traffic.weights.{cluster}", weight,
                                 f"names no declared cluster (declared: {', '.join(self.clusters)}). If you removed it while "
                                 f"it still has a weight: first set its weight to 0 (or drop the key) and pulumi up, then "
                                 f"remove the cluster in a second change"))
            elif cluster not in enabled:
                problems.append((f"traffic.weights.{cluster}", weight,
                                 f"is set on a disabled cluster (clusters.{cluster}.enabled: false): drop the weight or enable the cluster"))
        if traffic.mode == "weighted" and enabled and not any(traffic.weights.get(c, 0) for c in enabled):
            problems.append(("traffic.weights", traffic.weights,
                             f"sum to 0 across the enabled clusters ({', '.join(enabled)}): give at least one a weight above 0"))
        return problems

    def _edge_and_preview_problems(self) -> list[tuple[str, Any, str]]:
        problems = []
        for key in ("rate_limit", "access"):
            if getattr(self.edge, key) is not None and not self.edge.manage_zone:
                problems.append((f"edge.{to_camel(key)}", "set", "is zone-level: only the stack with edge.manageZone: true may set it"))
        preview = self.preview
        if preview.enabled and preview.number is None:
            problems.append(("preview.number", None, "is required with preview.enabled: true (the pull request number)"))
        named = re.fullmatch(r"pr-([0-9]+)", self.stack)
        if named and preview.number is not None and preview.number != int(named.group(1)):
            problems.append(("preview.number", preview.number, f"must match the stack name {self.stack}"))
        domain = preview.domain
        if domain is not None and domain != self.cloudflare.zone and not domain.endswith("." + self.cloudflare.zone):
            problems.append(("preview.domain", domain, f"must be the zone {self.cloudflare.zone} or a name inside it"))
        return problems

    @property
    def is_preview(self) -> bool:
        """A pull-request preview stack: no GPUs, no vLLM, no zone-level resources (components/preview.py)."""
        return self.preview.enabled

    def _gateway_problems(self) -> list[tuple[str, Any, str]]:
        gateway, problems = self.gateway, []
        if not gateway.enabled:
            if self.tunnel.origin_service is None:
                problems.append(("tunnel.originService", None, "is required when gateway.enabled is false (the tunnel needs somewhere to send traffic)"))
            return problems
        if gateway.max_replicas < gateway.replicas:
            problems.append(("gateway.maxReplicas", gateway.max_replicas, f"must be at least gateway.replicas ({gateway.replicas})"))
        names = [c.name for c in gateway.clients]
        served = set(self.served_model_names)
        for index, client in enumerate(gateway.clients):
            if names.count(client.name) > 1:
                problems.append((f"gateway.clients[{index}].name", client.name, "is used by another client"))
            for model in client.models:
                if model != "*" and model not in served:
                    problems.append((f"gateway.clients[{index}].models", model, f"is not served here; served: {', '.join(sorted(served)) or 'none'}"))
        return problems

    def model_plan(self, model_name: str, cluster_name: str) -> "ModelPlan":
        """The model's settings in one cluster, per-cluster overrides applied."""
        model = self.models[model_name]
        override = self.clusters[cluster_name].models.get(model_name, ModelOverride())
        return ModelPlan(
            name=model_name,
            served_name=model.served_name or model_name,
            model=model,
            replicas=override.replicas if override.replicas is not None else model.replicas,
            gpus_per_replica=override.gpus_per_replica or model.gpus_per_replica,
            tensor_parallel_size=override.tensor_parallel_size or model.tensor_parallel_size,
            image=override.image or model.image,
        )

    @property
    def served_model_names(self) -> list[str]:
        """Every model name clients may send, from vLLM and from external backends."""
        return [m.served_name or n for n, m in self.models.items()] + [x for b in self.backends.values() for x in b.models]

    @property
    def secret_prefix(self) -> str:
        return self.secrets.prefix.replace("{stack}", self.stack)

    @property
    def enabled_clusters(self) -> list[str]:
        return [name for name, cluster in self.clusters.items() if cluster.enabled]

    @property
    def traffic_weights(self) -> dict[str, int]:
        """Weighted mode: every enabled cluster's weight (0 when not listed)."""
        return {name: self.traffic.weights.get(name, 0) for name in self.enabled_clusters}

    @property
    def active_cluster(self) -> str:
        """The cluster taking all (dns) or most (weighted: highest weight, first declared on a tie) traffic."""
        if self.traffic.mode == "weighted":
            weights = self.traffic_weights
            return max(weights, key=lambda name: weights[name])
        return self.traffic.active or self.enabled_clusters[0]

    def validation_hostname(self, cluster: str) -> str:
        return f"{cluster}.{self.public_hostname}"

    def origin_service(self, cluster: str) -> str:
        template = self.tunnel.origin_service or GATEWAY_SERVICE_URL
        return template.replace("{namespace}", self.clusters[cluster].namespace)


class ModelPlan(BaseModel):
    """A model as it runs in one cluster."""

    model_config = ConfigDict(frozen=True)

    name: str
    served_name: str
    model: ServedModel
    replicas: int
    gpus_per_replica: int
    tensor_parallel_size: int
    image: str


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
    # Imported here: the preview module builds on this one.
    from components.preview import derive_preview, preview_from_stack_name

    known = preview_from_stack_name(stack, known)
    try:
        config = StackConfig.model_validate({**known, "stack": stack})
    except ValidationError as error:
        lines.extend(_error_lines(error, known))
        config = None
    if lines:
        raise ConfigError("invalid stack config:\n  " + "\n  ".join(lines))
    return derive_preview(config) if config.is_preview else config


def decode_project_config(config: dict[str, Any]) -> dict[str, Any]:
    """The `llm-edge:` keys of a full config map, prefix dropped and JSON values decoded."""
    prefix = PROJECT + ":"
    raw: dict[str, Any] = {}
    for full_key in sorted(k for k in config if k.startswith(prefix)):
        value = config[full_key]
        try:
            raw[full_key[len(prefix):]] = json.loads(value)
        except (TypeError, json.JSONDecodeError):
            raw[full_key[len(prefix):]] = value
    return raw


def read_project_config() -> dict[str, Any]:
    """Every `llm-edge:` key of the running stack, JSON values decoded."""
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return decode_project_config({key: runtime_config.get_config(key) for key in keys})


def load_stack_config() -> StackConfig:
    """Parse the running stack's config. Call before registering any resource."""
    raw = read_project_config()
    # Keys named by a `...ConfigKey` setting hold secrets (a kubeconfig, a token): they are read
    # later, as secrets, not parsed here.
    referenced = set(config_key_references(raw))
    return parse_stack_config(pulumi.get_stack(), {k: v for k, v in raw.items() if k not in referenced})


def config_key_references(value: Any):
    """Names of the secret config keys that `...ConfigKey` settings point to."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("ConfigKey") and isinstance(item, str):
                yield item
            else:
                yield from config_key_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from config_key_references(item)
