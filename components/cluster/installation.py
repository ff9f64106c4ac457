"""ClusterInstallation: everything this stack installs in one Kubernetes cluster, behind its own tunnel.

Its namespace, the Kubernetes Secrets, the connector, the gateway, the vLLM servers, the alerts
and the NetworkPolicies, each through the area that builds it; this module only composes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.firewall import Allow, NamespaceFirewall, NamespaceFirewallArgs
from components.config import ClusterSettings, StackSettings, disposable_annotations, disposable_labels
from components.gateway import LIMIT_STORE_PORT, ApiGateway, GatewayArgs, LimitStore, LimitStoreArgs, SharedLimitsWiring, Upstream
from components.gateway import METRICS_PORT as GATEWAY_METRICS_PORT
from components.gateway import PORT as GATEWAY_PORT
from components.gateway import store_url as limit_store_url
from components.inference import PORT as VLLM_PORT
from components.inference import VllmServer, VllmServerArgs
from components.inference import service_name as vllm_deployment_name
from components.inference import service_url as vllm_service_url
from components.kube import PART_OF, SecretKey, selector_labels
from components.naming import IAM_ROLE_NAME_LIMIT, LABEL_VALUE_LIMIT, bounded
from components.observability import AlertsArgs, DashboardsArgs, DashboardScope, GrafanaDashboards, PrometheusAlerts
from components.secrets import ClusterSecrets, SecretDelivery, SecretDeliveryArgs, SecretRef
from components.tunnel import CONNECTOR_APP, CONNECTOR_METRICS_PORT, CloudflaredConnector, CloudflaredConnectorArgs

TUNNEL_TOKEN = SecretKey("cloudflared-token", "token")
VLLM_API_KEY = SecretKey("vllm-api-key", "api-key")
HUGGING_FACE_TOKEN = SecretKey("hugging-face-token", "token")
CLIENT_KEY_HASHES_SECRET = "gateway-client-key-hashes"
BACKEND_KEYS_SECRET = "backend-api-keys"
LIMIT_STORE_PASSWORD = SecretKey("gateway-limit-store", "password")
LIMIT_STORE_URL = SecretKey("gateway-limit-store", "url")


@dataclass(frozen=True)
class ClusterInstallationArgs:
    cluster_name: str
    cluster: ClusterSettings
    config: StackSettings
    # A whole kubeconfig (secret), when the cluster is not reached through a local context.
    kubeconfig: pulumi.Input[str] | None
    secrets: ClusterSecrets


class ClusterInstallation(pulumi.ComponentResource):
    """Its type token keeps the name `ClusterStack` of the first release: every child's URN contains it."""

    provider: k8s.Provider
    namespace: k8s.core.v1.Namespace
    gateway: ApiGateway | None
    limit_store: LimitStore | None
    alerts: PrometheusAlerts | None
    dashboards: GrafanaDashboards | None

    def __init__(self, name: str, args: ClusterInstallationArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:cluster:ClusterStack", name, None, opts)
        cluster, config = args.cluster, args.config
        # The `app.kubernetes.io/instance` label of every object of this cluster.
        self.instance = instance = bounded(f"{config.stack}-{args.cluster_name}", LABEL_VALUE_LIMIT)
        # Named after the cluster so that rendered manifests and plans group by it.
        self.provider = k8s.Provider(
            args.cluster_name,
            k8s.ProviderArgs(
                context=cluster.context,
                kubeconfig=pulumi.Output.secret(args.kubeconfig) if args.kubeconfig is not None else None,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        in_cluster = pulumi.ResourceOptions(parent=self, provider=self.provider)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            k8s.core.v1.NamespaceInitArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=cluster.namespace,
                    labels={
                        "app.kubernetes.io/part-of": PART_OF,
                        "app.kubernetes.io/managed-by": "pulumi",
                        # ROCm vLLM runs as root (components/inference/vllm.py), so `restricted` is
                        # only warned about, not enforced.
                        "pod-security.kubernetes.io/enforce": "baseline",
                        "pod-security.kubernetes.io/warn": "restricted",
                        "pod-security.kubernetes.io/audit": "restricted",
                        # Previews: marks the namespace as safe to delete with its pull request.
                        **disposable_labels(config),
                    },
                    annotations=disposable_annotations(config) or None,
                )
            ),
            in_cluster,
        )
        namespace = self.namespace.metadata.apply(lambda m: m.name)
        # A preview runs no GPUs: its gateway routes to the source stack's model Services.
        plans = [] if config.is_preview else [config.model_plan(model, args.cluster_name) for model in config.models]
        plans = [plan for plan in plans if plan.replicas > 0]

        secrets = args.secrets
        delivered = {TUNNEL_TOKEN: secrets.tunnel_token}
        if plans or config.gateway.enabled:
            delivered[VLLM_API_KEY] = secrets.vllm_api_key
        if plans and secrets.hugging_face_token is not None:
            delivered[HUGGING_FACE_TOKEN] = secrets.hugging_face_token
        if config.gateway.enabled:
            delivered.update({SecretKey(CLIENT_KEY_HASHES_SECRET, n): ref for n, ref in secrets.client_key_hashes.items()})
            delivered.update({SecretKey(BACKEND_KEYS_SECRET, n): ref for n, ref in secrets.backend_keys.items()})
            if secrets.limit_store_password is not None:
                delivered[LIMIT_STORE_PASSWORD] = secrets.limit_store_password
            if secrets.limit_store_url is not None:
                delivered[LIMIT_STORE_URL] = secrets.limit_store_url
        self.secrets = SecretDelivery(
            f"{name}-secrets",
            SecretDeliveryArgs(
                mode=config.secrets.delivery,
                namespace=namespace,
                namespace_name=cluster.namespace,
                instance=instance,
                secrets=_by_secret(delivered),
                region=config.secrets.region,
                refresh_interval=config.secrets.refresh_interval,
                oidc_provider_arn=cluster.oidc_provider_arn,
                kms_key_id=config.secrets.kms_key_id,
                role_name=bounded(f"{instance}-secrets-reader", IAM_ROLE_NAME_LIMIT),
            ),
            in_cluster,
        )
        self.connector = CloudflaredConnector(
            f"{name}-connector",
            CloudflaredConnectorArgs(
                namespace=namespace,
                instance=instance,
                replicas=cluster.connector.replicas,
                image=cluster.connector.image,
                resources=cluster.connector.resources,
                tolerated_taints=cluster.tolerated_taints,
                token=TUNNEL_TOKEN,
                depends_on=self.secrets.ready,
                secrets_version=self.secrets.fingerprint([TUNNEL_TOKEN]),
            ),
            in_cluster,
        )
        self.models = {
            plan.name: VllmServer(
                f"{name}-vllm-{plan.name}",
                VllmServerArgs(
                    namespace=namespace,
                    instance=instance,
                    plan=plan,
                    gpu=cluster.gpu,
                    api_key=VLLM_API_KEY,
                    hugging_face_token=HUGGING_FACE_TOKEN if HUGGING_FACE_TOKEN in delivered else None,
                    depends_on=self.secrets.ready,
                    tunnel_keep_alive_seconds=config.tunnel.keep_alive_timeout_seconds,
                    # Not the Hugging Face token: vLLM uses it only to download weights, and a
                    # restart reloads them (docs/key-rotation.md).
                    secrets_version=self.secrets.fingerprint([VLLM_API_KEY]),
                ),
                in_cluster,
            )
            for plan in plans
        }
        self.gateway = self.limit_store = None
        shared_limits = config.gateway.shared_limits if config.gateway.enabled else None
        if shared_limits is not None and shared_limits.mode == "in-cluster":
            self.limit_store = LimitStore(
                f"{name}-limit-store",
                LimitStoreArgs(
                    namespace=namespace,
                    instance=instance,
                    settings=shared_limits,
                    password=LIMIT_STORE_PASSWORD,
                    tolerated_taints=cluster.tolerated_taints,
                    depends_on=self.secrets.ready,
                    secrets_version=self.secrets.fingerprint([LIMIT_STORE_PASSWORD]),
                ),
                in_cluster,
            )
        if config.gateway.enabled:
            self.gateway = ApiGateway(
                f"{name}-gateway",
                GatewayArgs(
                    namespace=namespace,
                    instance=instance,
                    settings=config.gateway,
                    upstreams=self._upstreams(config, cluster.namespace, set(secrets.backend_keys)),
                    client_key_hashes={n: SecretKey(CLIENT_KEY_HASHES_SECRET, n) for n in secrets.client_key_hashes},
                    tolerated_taints=cluster.tolerated_taints,
                    depends_on=self.secrets.ready,
                    origin_keep_alive_timeout_seconds=config.tunnel.keep_alive_timeout_seconds,
                    shared_limits=self._shared_limits(config, cluster.namespace),
                    # Every credential it reads: the vLLM key, key hashes, backend keys, the store's.
                    secrets_version=self.secrets.fingerprint(
                        [key for key in delivered if key not in (TUNNEL_TOKEN, HUGGING_FACE_TOKEN)]),
                ),
                in_cluster,
            )
        self.dashboards = None
        if config.alerts.enabled and config.alerts.dashboards.enabled:
            scope = DashboardScope(
                instance=instance,
                namespace=cluster.namespace,
                connector_replicas=cluster.connector.replicas,
                gateway=self.gateway is not None,
                vllm_deployments=tuple(vllm_deployment_name(model) for model in self.models),
                gpu_vendor=cluster.gpu.vendor,
                runbook_url=config.alerts.runbook_url,
                shared_limits=shared_limits is not None,
            )
            self.dashboards = GrafanaDashboards(
                f"{name}-dashboards", DashboardsArgs(namespace=namespace, scope=scope, settings=config.alerts.dashboards), in_cluster
            )
        alerts = AlertsArgs(
            namespace=namespace,
            namespace_name=cluster.namespace,
            instance=instance,
            connector_replicas=cluster.connector.replicas,
            models=list(self.models),
            gateway=self.gateway is not None,
            settings=config.alerts,
            shared_limits=shared_limits is not None,
            dashboard_links=self.dashboards.links if self.dashboards else {},
        )
        self.alerts = PrometheusAlerts(f"{name}-alerts", alerts, in_cluster) if config.alerts.enabled else None
        if config.network_policies.enabled:
            NamespaceFirewall(
                f"{name}-firewall",
                NamespaceFirewallArgs(
                    namespace=namespace,
                    instance=instance,
                    monitoring_namespace=config.network_policies.monitoring_namespace,
                    allows=self._allows(config),
                ),
                in_cluster,
            )
        self.register_outputs({})

    def _shared_limits(self, config: StackSettings, namespace: str) -> SharedLimitsWiring | None:
        """in-cluster: this cluster's store and its password; external: the URL from its Secret."""
        if config.gateway.shared_limits is None:
            return None
        in_cluster = self.limit_store is not None
        return SharedLimitsWiring(
            url=limit_store_url(namespace) if in_cluster else None,
            url_key=None if in_cluster else LIMIT_STORE_URL,
            password_key=LIMIT_STORE_PASSWORD if in_cluster else None,
            key_prefix=f"llm-edge:{config.stack}:limits:",
        )

    def _upstreams(self, config: StackSettings, namespace: str, keyed_backends: set[str]) -> list[Upstream]:
        """Each model name clients send -> its vLLM Service in this cluster, or an external backend."""
        if config.is_preview:
            models_namespace = config.preview.models_namespace
            assert models_namespace is not None, "derive_preview sets it"
            upstreams = [
                Upstream(model.served_name or model_name, [vllm_service_url(model_name, models_namespace)], VLLM_API_KEY,
                         model.routing, model.routing_load_factor)
                for model_name, model in config.models.items()
            ]
        else:
            upstreams = [
                Upstream(server.served_name, [vllm_service_url(model_name, namespace)], VLLM_API_KEY,
                         config.models[model_name].routing, config.models[model_name].routing_load_factor)
                for model_name, server in self.models.items()
            ]
        for backend_name, backend in config.backends.items():
            key = SecretKey(BACKEND_KEYS_SECRET, backend_name) if backend_name in keyed_backends else None
            upstreams += [Upstream(model, [backend.url.rstrip("/")], key) for model in backend.models]
        return upstreams

    def _allows(self, config: StackSettings) -> list[Allow]:
        """One hop of the request path each: tunnel -> gateway -> vLLM, metrics from monitoring."""
        connector = selector_labels(CONNECTOR_APP, self.instance)
        routed_models = {route.backend for route in config.routes if route.backend in config.models}
        allows = [
            Allow("allow-metrics-to-cloudflared", to=connector, ports=[CONNECTOR_METRICS_PORT], from_pods=[], from_monitoring=True)
        ]
        if self.gateway is not None:
            allows.append(Allow("allow-to-gateway", to=self.gateway.selector, ports=[GATEWAY_PORT], from_pods=[connector]))
            allows.append(
                Allow(
                    "allow-metrics-to-gateway",
                    to=self.gateway.selector,
                    ports=[GATEWAY_METRICS_PORT],
                    from_pods=[],
                    from_monitoring=True,
                )
            )
        if self.gateway is not None and self.limit_store is not None:
            allows.append(Allow("allow-to-gateway-limits", to=self.limit_store.selector, ports=[LIMIT_STORE_PORT],
                                from_pods=[self.gateway.selector]))
        for model_name, server in self.models.items():
            sources = [self.gateway.selector] if self.gateway is not None else []
            # The tunnel reaches vLLM itself only without a gateway, or for a hostname route to the model.
            if self.gateway is None or model_name in routed_models:
                sources.append(connector)
            # vLLM serves /metrics on its API port too.
            allows.append(
                Allow(
                    f"allow-to-vllm-{model_name}",
                    to=server.selector,
                    ports=[VLLM_PORT],
                    from_pods=sources,
                    from_monitoring=True,
                    from_preview_gateways=config.network_policies.preview_gateways,
                )
            )
        return allows


def _by_secret(delivered: dict[SecretKey, SecretRef]) -> dict[str, dict[str, SecretRef]]:
    """Group single keys into the Kubernetes Secrets that hold them."""
    grouped: dict[str, dict[str, SecretRef]] = {}
    for key, ref in delivered.items():
        grouped.setdefault(key.secret_name, {})[key.key] = ref
    return grouped
