"""Gateway: the API-key proxy service (gateway/) deployed in one cluster.

Config comes from a ConfigMap rendered here in the gateway's own format (gateway/README.md); key
hashes and upstream keys come from Secrets as environment variables, so the ConfigMap holds
nothing secret. The pods restart when the config changes (a checksum annotation), drain on
SIGTERM within the grace period, and scale on CPU.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.config import GatewaySettings, Taint
from components.kube import (
    SecretKey,
    cluster_service,
    disruption_budget,
    hardened_container_security,
    http_probe,
    non_root_pod_security,
    object_labels,
    pod_metadata,
    resource_requirements,
    rolling_deployment_spec,
    secret_env,
    selector_labels,
    spread_across_nodes,
    tolerations,
)

APP = "gateway"
PORT = 8080
# /metrics only: kept off the API port so the tunnel never publishes it.
METRICS_PORT = 9090
CONFIG_PATH = "/etc/gateway"
# The gateway image's user (gateway/Dockerfile).
GATEWAY_UID = 10001
# How long the gateway keeps serving after SIGTERM while endpoints are removed (its drain_delay_s).
DRAIN_DELAY_SECONDS = 5
# The gateway keeps an idle connection open this much longer than cloudflared keeps it in its pool:
# the side that closes first must be the client, or a request can be sent into a closing connection.
KEEP_ALIVE_MARGIN_SECONDS = 10


@dataclass(frozen=True)
class Upstream:
    """A model name clients send, where it is served, and the Secret key the gateway injects."""

    model: str
    urls: list[str]
    key: SecretKey | None
    # The gateway's per-model routing (gateway/README.md); None keeps the gateway's default.
    routing: str | None = None
    routing_load_factor: float | None = None


@dataclass(frozen=True)
class SharedLimitsWiring:
    """Where the gateway finds its limit store: a plain URL (in-cluster) or a Secret key holding one (external)."""

    url: str | None
    url_key: SecretKey | None
    password_key: SecretKey | None
    # Replicas that share one store; keys are per stack so two stacks never share a budget.
    key_prefix: str


@dataclass(frozen=True)
class GatewayArgs:
    namespace: pulumi.Input[str]
    instance: str
    settings: GatewaySettings
    upstreams: list[Upstream]
    # Client name -> Secret key holding the hex SHA-256 of its key.
    client_key_hashes: dict[str, SecretKey]
    tolerated_taints: list[Taint]
    depends_on: list[pulumi.Resource]
    # How long cloudflared keeps an idle connection to the gateway (the tunnel's keepAliveTimeout).
    origin_keep_alive_timeout_seconds: int
    shared_limits: SharedLimitsWiring | None = None
    secrets_version: pulumi.Input[str] | None = None


LIMIT_STORE_URL_ENV = "LIMIT_STORE_URL"
LIMIT_STORE_PASSWORD_ENV = "LIMIT_STORE_PASSWORD"


def env_name(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9]", "_", p).upper() for p in parts)


def gateway_config(args: GatewayArgs) -> dict:
    """The gateway's YAML config, as `python -m gateway --config` reads it."""
    settings = args.settings
    return {
        "listen": f"0.0.0.0:{PORT}",
        "metrics_listen": f"0.0.0.0:{METRICS_PORT}",
        "models": {u.model: _model_config(u) for u in args.upstreams},
        "clients": [
            {
                "name": c.name,
                "key_sha256_env": env_name("client", c.name, "key_sha256"),
                "models": list(c.models),
                **({"rpm": c.rpm} if c.rpm else {}),
                **({"tpm": c.tpm} if c.tpm else {}),
            }
            for c in settings.clients
        ],
        "cors_origins": list(settings.cors_origins),
        "max_body_bytes": settings.max_body_bytes,
        "upstream_read_timeout_s": settings.upstream_read_timeout_seconds,
        "edge_first_byte_timeout_s": settings.edge_first_byte_timeout_seconds,
        "client_keepalive_timeout_s": args.origin_keep_alive_timeout_seconds + KEEP_ALIVE_MARGIN_SECONDS,
        "drain_grace_s": settings.drain_grace_seconds,
        "drain_delay_s": DRAIN_DELAY_SECONDS,
        **({"shared_limits": _shared_limits_config(args.shared_limits, settings)} if args.shared_limits else {}),
    }


def _shared_limits_config(wiring: SharedLimitsWiring, settings: GatewaySettings) -> dict:
    assert settings.shared_limits is not None, "wired only with gateway.sharedLimits"
    return {
        **({"url": wiring.url} if wiring.url else {"url_env": LIMIT_STORE_URL_ENV}),
        **({"password_env": LIMIT_STORE_PASSWORD_ENV} if wiring.password_key else {}),
        "timeout_ms": settings.shared_limits.timeout_ms,
        # The autoscaler's floor: at that size the fleet keeps the configured limits while the store is away.
        "fallback_replicas": settings.replicas,
        "key_prefix": wiring.key_prefix,
    }


def _model_config(upstream: Upstream) -> dict:
    config: dict = {"upstreams": upstream.urls}
    if upstream.key:
        config["upstream_key_env"] = env_name("upstream", upstream.key.secret_name, upstream.key.key)
    if upstream.routing is not None:
        config["routing"] = upstream.routing
    if upstream.routing_load_factor is not None:
        config["routing_load_factor"] = upstream.routing_load_factor
    return config


class ApiGateway(pulumi.ComponentResource):
    """The gateway in one cluster. Its type token keeps the name `Gateway` of the first release:
    every child's URN contains it."""

    selector: dict[str, str]

    def __init__(self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:gateway:Gateway", name, None, opts)
        settings = args.settings
        self.selector = selector_labels(APP, args.instance)
        labels = object_labels(APP, args.instance, APP)
        metadata = k8s.meta.v1.ObjectMetaArgs(name=APP, namespace=args.namespace, labels=labels)
        child = pulumi.ResourceOptions(parent=self)

        config_text = yaml.safe_dump(gateway_config(args), sort_keys=False)
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            k8s.core.v1.ConfigMapInitArgs(metadata=metadata, data={"config.yaml": config_text}),
            child,
        )
        env = [secret_env(env_name("client", client, "key_sha256"), key) for client, key in args.client_key_hashes.items()]
        upstream_keys = dict.fromkeys(u.key for u in args.upstreams if u.key is not None)  # first use order, once each
        env += [secret_env(env_name("upstream", key.secret_name, key.key), key) for key in upstream_keys]
        if args.shared_limits is not None:
            env += [secret_env(var, key) for var, key in ((LIMIT_STORE_URL_ENV, args.shared_limits.url_key),
                                                          (LIMIT_STORE_PASSWORD_ENV, args.shared_limits.password_key))
                    if key is not None]
        container = k8s.core.v1.ContainerArgs(
            name=APP,
            image=settings.image,
            args=["--config", f"{CONFIG_PATH}/config.yaml"],
            env=env,
            ports=[
                k8s.core.v1.ContainerPortArgs(name="http", container_port=PORT),
                k8s.core.v1.ContainerPortArgs(name="metrics", container_port=METRICS_PORT),
            ],
            readiness_probe=http_probe("/readyz", "http", 5, 2),
            liveness_probe=http_probe("/healthz", "http", 10, 3),
            resources=resource_requirements(settings.resources),
            security_context=hardened_container_security(),
            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="config", mount_path=CONFIG_PATH, read_only=True)],
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            k8s.apps.v1.DeploymentInitArgs(
                metadata=metadata,
                spec=rolling_deployment_spec(
                    # The autoscaler owns the count: a replicas field here would reset it on every
                    # `pulumi up` ("remove spec.replicas from the manifest" when an HPA manages it:
                    # https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#migrating-deployments-and-statefulsets-to-horizontal-autoscaling).
                    # A new Deployment starts with one pod until the autoscaler raises it to minReplicas.
                    replicas=None,
                    selector=self.selector,
                    max_surge=1,
                    max_unavailable=0,
                    # A new config rolls the pods; the gateway reads its config only at start-up.
                    pod_metadata=pod_metadata(labels, args.secrets_version, {
                        "llm-edge.dev/config-sha256": hashlib.sha256(config_text.encode()).hexdigest()}),
                    pod_spec=k8s.core.v1.PodSpecArgs(
                        containers=[container],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="config",
                                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=APP),
                            )
                        ],
                        automount_service_account_token=False,
                        security_context=non_root_pod_security(GATEWAY_UID),
                        tolerations=tolerations(args.tolerated_taints),
                        topology_spread_constraints=spread_across_nodes(self.selector),
                        # Above the drain: endpoint removal delay plus the grace for in-flight streams.
                        termination_grace_period_seconds=DRAIN_DELAY_SECONDS + settings.drain_grace_seconds + 10,
                    ),
                ),
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[config_map, *args.depends_on]),
        )
        self.service = cluster_service(f"{name}-service", metadata, self.selector, "http", PORT, self)
        self.disruption_budget = disruption_budget(f"{name}-pdb", metadata, self.selector, self)
        self.autoscaler = k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            k8s.autoscaling.v2.HorizontalPodAutoscalerInitArgs(
                metadata=metadata,
                spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                    scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                        api_version="apps/v1", kind="Deployment", name=APP
                    ),
                    min_replicas=settings.replicas,
                    max_replicas=settings.max_replicas,
                    metrics=[
                        k8s.autoscaling.v2.MetricSpecArgs(
                            type="Resource",
                            resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                                name="cpu",
                                target=k8s.autoscaling.v2.MetricTargetArgs(
                                    type="Utilization", average_utilization=settings.target_cpu_utilization
                                ),
                            ),
                        )
                    ],
                ),
            ),
            child,
        )
        self.register_outputs({})
