"""The whole stack config: the root model, cross-key checks, parsing and loading.

Every key lives under the `llm-edge:` namespace of the stack's config. Values are validated by
pydantic; each problem becomes one line naming the full key (`llm-edge:clusters.blue.connector.
replicas`), the value given and what is allowed, and all problems are reported together.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

import pulumi
from pydantic import Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from components.config.base import PROJECT, ConfigError, DnsLabel, Hostname, Model
from components.config.cluster import ClusterSettings, ModelOverride, NetworkPolicySettings
from components.config.edge import CloudflareSettings, EdgeSettings
from components.config.gateway import GATEWAY_SERVICE_URL, GatewaySettings
from components.config.inference import (
    MODEL_KEY_LIMIT,
    SERVICE_NAME_LIMIT,
    BackendSettings,
    ModelPlan,
    ModelSettings,
    model_service_name,
)
from components.config.observability import AlertSettings
from components.config.plans import plan_problems
from components.config.preview import PreviewSettings, derive_preview, preview_from_stack_name, preview_number
from components.config.secrets import SecretsSettings
from components.config.traffic import TrafficSettings
from components.config.tunnel import RouteSettings, TunnelSettings

Problem = tuple[str, Any, str]


class StackSettings(Model):
    """The whole `llm-edge:` config of one stack."""

    stack: str = Field(exclude=True)
    cloudflare: CloudflareSettings
    public_hostname: Hostname
    edge: EdgeSettings = EdgeSettings()
    tunnel: TunnelSettings = TunnelSettings()
    secrets: SecretsSettings = SecretsSettings()
    clusters: Annotated[dict[DnsLabel, ClusterSettings], Field(min_length=1)]
    traffic: TrafficSettings = TrafficSettings()
    preview: PreviewSettings = PreviewSettings()
    models: dict[DnsLabel, ModelSettings] = Field(default_factory=dict)
    backends: dict[DnsLabel, BackendSettings] = Field(default_factory=dict)
    routes: list[RouteSettings] = Field(default_factory=list)
    network_policies: NetworkPolicySettings = NetworkPolicySettings()
    gateway: GatewaySettings = GatewaySettings()
    alerts: AlertSettings = AlertSettings()
    # A secret stack config key holding a Hugging Face token (gated models).
    hugging_face_token_config_key: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")] | None = None

    @model_validator(mode="after")
    def _cross_checks(self) -> StackSettings:
        problems: list[Problem] = []
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
        problems.extend(self._gateway_problems())
        problems.extend(self._route_problems())
        problems.extend(self.alerts.problems())
        problems.extend(self._name_problems())
        problems.extend(plan_problems(self))
        if problems:
            raise _CrossCheckError(problems)
        return self

    def _model_problems(self) -> list[Problem]:
        problems: list[Problem] = []
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
        return problems

    def _route_problems(self) -> list[Problem]:
        problems: list[Problem] = []
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

    def _name_problems(self) -> list[Problem]:
        """Keys that become names past their limits: DNS labels and Service names take 63 characters,
        hostnames 253 (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/, RFC 1035)."""
        problems: list[Problem] = []
        for model_name in self.models:
            if len(model_name) > MODEL_KEY_LIMIT:
                problems.append((f"models.{model_name}", len(model_name),
                                 f"is too long: the key names the Kubernetes Service {model_service_name(model_name)}, "
                                 f"and model keys take at most {MODEL_KEY_LIMIT} characters"))
        for cluster, hostname in self.validation_hostnames.items():
            label = hostname.split(".", 1)[0]
            if len(label) > SERVICE_NAME_LIMIT:
                problems.append((f"clusters.{cluster}", len(label),
                                 f"makes the validation hostname label {label} longer than 63 characters: shorten the "
                                 "cluster key, or use traffic.validationHostnames: nested"))
            elif len(hostname) > 253:
                problems.append((f"clusters.{cluster}", len(hostname), "makes the validation hostname longer than 253 characters"))
        return problems

    def _traffic_problems(self) -> list[Problem]:
        problems: list[Problem] = []
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
                                 f"is set on a disabled cluster (clusters.{cluster}.enabled: false): "
                                 "drop the weight or enable the cluster"))
        if traffic.mode == "weighted" and enabled and not any(traffic.weights.get(c, 0) for c in enabled):
            problems.append(("traffic.weights", traffic.weights,
                             f"sum to 0 across the enabled clusters ({', '.join(enabled)}): give at least one a weight above 0"))
        return problems

    def _edge_and_preview_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        for key in ("rate_limit", "access"):
            if getattr(self.edge, key) is not None and not self.edge.manage_zone:
                problems.append((f"edge.{to_camel(key)}", "set", "is zone-level: only the stack with edge.manageZone: true may set it"))
        preview = self.preview
        if preview.enabled and preview.number is None:
            problems.append(("preview.number", None, "is required with preview.enabled: true (the pull request number)"))
        named = preview_number(self.stack)
        if named is not None and preview.number is not None and preview.number != named:
            problems.append(("preview.number", preview.number, f"must match the stack name {self.stack}"))
        domain = preview.domain
        if domain is not None and domain != self.cloudflare.zone and not domain.endswith("." + self.cloudflare.zone):
            problems.append(("preview.domain", domain, f"must be the zone {self.cloudflare.zone} or a name inside it"))
        return problems

    @property
    def is_preview(self) -> bool:
        """A pull-request preview stack: no GPUs, no vLLM, no zone-level resources (config/preview.py)."""
        return self.preview.enabled

    def _gateway_problems(self) -> list[Problem]:
        gateway, problems = self.gateway, list[Problem]()
        if not gateway.enabled:
            if self.tunnel.origin_service is None:
                problems.append(("tunnel.originService", None,
                                 "is required when gateway.enabled is false (the tunnel needs somewhere to send traffic)"))
            return problems
        if gateway.max_replicas < gateway.replicas:
            problems.append(("gateway.maxReplicas", gateway.max_replicas, f"must be at least gateway.replicas ({gateway.replicas})"))
        shared = gateway.shared_limits
        if shared is not None and shared.mode == "external" and shared.url_config_key is None:
            problems.append(("gateway.sharedLimits.urlConfigKey", None,
                             "is required with mode: external (a secret config key holding the store's redis:// or "
                             "rediss:// URL)"))
        if shared is not None and shared.mode == "in-cluster" and shared.url_config_key is not None:
            problems.append(("gateway.sharedLimits.urlConfigKey", shared.url_config_key,
                             "is only for mode: external (in-cluster runs its own store)"))
        names = [c.name for c in gateway.clients]
        served = set(self.served_model_names)
        for index, client in enumerate(gateway.clients):
            if names.count(client.name) > 1:
                problems.append((f"gateway.clients[{index}].name", client.name, "is used by another client"))
            for model in client.models:
                if model != "*" and model not in served:
                    problems.append((f"gateway.clients[{index}].models", model,
                                     f"is not served here; served: {', '.join(sorted(served)) or 'none'}"))
        return problems

    def model_plan(self, model_name: str, cluster_name: str) -> ModelPlan:
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
            cache_storage_class=self.clusters[cluster_name].cache_storage_class or model.cache.storage_class,
        )

    @property
    def served_model_names(self) -> list[str]:
        """Every model name clients may send, from vLLM and from external backends."""
        return [m.served_name or n for n, m in self.models.items()] + [x for b in self.backends.values() for x in b.models]

    @property
    def secret_prefix(self) -> str:
        return self.secrets.prefix_for(self.stack)

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
        if self.traffic.validation_hostnames == "flat":
            first, parent = self.public_hostname.split(".", 1)
            return f"{cluster}-{first}.{parent}"
        return f"{cluster}.{self.public_hostname}"

    @property
    def validation_hostnames(self) -> dict[str, str]:
        """Each cluster's own hostname; a preview has none (one cluster, nothing to cut over)."""
        return {} if self.is_preview else {name: self.validation_hostname(name) for name in self.clusters}

    def origin_service(self, cluster: str) -> str:
        template = self.tunnel.origin_service or GATEWAY_SERVICE_URL
        return template.replace("{namespace}", self.clusters[cluster].namespace)


class _CrossCheckError(ValueError):
    """Problems that span several keys; carries (key, value, message) triples."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(f"{k}: {m}" for k, _, m in problems))
        self.problems = problems


# Top-level config keys, as written in Pulumi.<stack>.yaml (without the `llm-edge:` prefix).
TOP_LEVEL_KEYS = tuple(
    field.alias or name for name, field in StackSettings.model_fields.items() if name != "stack"
)


def _format_value(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _error_lines(error: ValidationError) -> list[str]:
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


def parse_stack_config(stack: str, raw: dict[str, Any]) -> StackSettings:
    """Validate a dict of top-level keys (camelCase, no prefix). Raises ConfigError listing all problems."""
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    lines = [f"{PROJECT}:{key}: is not a known setting (known: {', '.join(TOP_LEVEL_KEYS)})" for key in unknown]
    known = preview_from_stack_name(stack, {k: v for k, v in raw.items() if k in TOP_LEVEL_KEYS})
    config = None
    try:
        config = StackSettings.model_validate({**known, "stack": stack})
    except ValidationError as error:
        lines.extend(_error_lines(error))
    if lines or config is None:
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


def load_stack_config() -> StackSettings:
    """Parse the running stack's config. Call before registering any resource."""
    return settings_from_raw(pulumi.get_stack(), read_project_config())


def settings_from_raw(stack: str, raw: dict[str, Any]) -> StackSettings:
    """Parse decoded `llm-edge:` keys; the secret keys that `...ConfigKey` settings name are left out."""
    # They hold secrets (a kubeconfig, a token): the program reads them later, as secrets.
    referenced = set(config_key_references(raw))
    return parse_stack_config(stack, {k: v for k, v in raw.items() if k not in referenced})


def config_key_references(value: Any) -> Iterator[str]:
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
