"""llm-edge: self-hosted LLMs on Kubernetes, published through Cloudflare Tunnels.

Reads the typed stack config and composes the areas in the order a request meets them: the
Cloudflare edge, a tunnel per cluster, the secrets, what runs in each cluster, and the traffic
switch that points the public hostname at a cluster. Resource details live in components/.
"""

import json

import pulumi

from components.cluster import ClusterInstallation, ClusterInstallationArgs
from components.config import certificate_hosts, disposable_labels, load_stack_config, rate_limit_can_match_hosts
from components.edge import EdgeProtection, EdgeProtectionArgs, EdgeZone, EdgeZoneArgs
from components.inference import service_url as vllm_service_url
from components.observability import TunnelHealthNotification, TunnelHealthNotificationArgs
from components.secrets import Credentials, CredentialsArgs, SecretVault, SecretVaultArgs, VaultEntry, keys
from components.traffic import TrafficSwitch, TrafficSwitchArgs
from components.tunnel import InferenceTunnel, InferenceTunnelArgs, IngressRule, OriginRequest

config = load_stack_config()
stack = config.stack
# Values of the secret config keys that `...ConfigKey` settings name; read here and nowhere else.
secret_config = pulumi.Config()

# --- the Cloudflare edge: zone, TLS settings, rate limit and Access --------------------------
zone = EdgeZone(
    "edge",
    EdgeZoneArgs(
        account_id=config.cloudflare.account_id,
        zone=config.cloudflare.zone,
        manage_zone=config.edge.manage_zone,
        create_zone=config.edge.create_zone,
        certificate_hosts=tuple(certificate_hosts(config)),
    ),
)
edge_protection = EdgeProtection(
    "edge-protection",
    EdgeProtectionArgs(
        account_id=config.cloudflare.account_id,
        zone_id=zone.zone_id,
        hostname=config.public_hostname,
        route_hostnames=tuple(route.hostname for route in config.routes),
        validation_hostnames=tuple(config.validation_hostnames.values()) if config.traffic.validation_hostnames == "flat" else (),
        rate_limit=config.edge.rate_limit,
        access=config.edge.access,
        match_hosts=rate_limit_can_match_hosts(config.cloudflare.plan),
    ),
)

# --- one tunnel per cluster -----------------------------------------------------------------
origin_request = OriginRequest(
    connect_timeout_seconds=config.tunnel.connect_timeout_seconds,
    keep_alive_connections=config.tunnel.keep_alive_connections,
    keep_alive_timeout_seconds=config.tunnel.keep_alive_timeout_seconds,
    no_tls_verify=config.tunnel.no_tls_verify,
)


def route_service(backend: str, cluster_name: str) -> str:
    """Where a hostname route sends traffic: a model's vLLM Service in that cluster, or a backend's URL."""
    if backend in config.models:
        return vllm_service_url(backend, config.clusters[cluster_name].namespace)
    return config.backends[backend].url


tunnels = {}
for cluster_name in config.clusters:
    origin = config.origin_service(cluster_name)
    validation_hosts = [config.validation_hostnames[cluster_name]] if cluster_name in config.validation_hostnames else []
    # Every tunnel accepts the public hostname too, so moving traffic changes no tunnel.
    tunnels[cluster_name] = InferenceTunnel(
        f"tunnel-{cluster_name}",
        InferenceTunnelArgs(
            account_id=config.cloudflare.account_id,
            zone_id=zone.zone_id,
            tunnel_name=f"llm-edge-{stack}-{cluster_name}",
            ingress=[
                *(IngressRule(host, origin) for host in validation_hosts),
                IngressRule(config.public_hostname, origin),
                *(IngressRule(r.hostname, route_service(r.backend, cluster_name)) for r in config.routes),
            ],
            origin_request=origin_request,
            dns_hostnames=validation_hosts,
        ),
    )

# Cloudflare watches the tunnels itself: this alert still arrives when a whole cluster is gone.
alerts = config.alerts
if alerts.enabled and alerts.tunnel_notifications:
    TunnelHealthNotification(
        "tunnel-health",
        TunnelHealthNotificationArgs(
            account_id=config.cloudflare.account_id,
            display_name=f"llm-edge {stack}",
            tunnel_ids={name: tunnel.tunnel_id for name, tunnel in tunnels.items()},
            emails=list(alerts.emails),
            webhook_url=secret_config.require_secret(alerts.webhook_url_config_key) if alerts.webhook_url_config_key else None,
            webhook_secret=(
                secret_config.require_secret(alerts.webhook_secret_config_key) if alerts.webhook_secret_config_key else None
            ),
        ),
    )

# --- secrets: generated and given keys, stored in AWS Secrets Manager ------------------------
base_url = f"https://{config.public_hostname}/v1"
shared_limits = config.gateway.shared_limits if config.gateway.enabled else None
credentials = Credentials(
    "credentials",
    CredentialsArgs(
        clients=[client.name for client in config.gateway.clients],
        # A preview runs no vLLM: its gateway uses the source stack's models, so their key.
        borrowed_vllm_key_secret=(
            keys.VLLM_API_KEY.full_name(config.secrets.prefix_for(config.preview.source_stack)) if config.is_preview else None
        ),
        hugging_face_token=(
            secret_config.require_secret(config.hugging_face_token_config_key)
            if config.hugging_face_token_config_key and not config.is_preview
            else None
        ),
        backend_keys={
            name: secret_config.require_secret(backend.api_key_config_key)
            for name, backend in config.backends.items()
            if backend.api_key_config_key
        },
        limit_store_password=shared_limits is not None and shared_limits.mode == "in-cluster",
        limit_store_url=(
            secret_config.require_secret(shared_limits.url_config_key)
            if shared_limits is not None and shared_limits.url_config_key
            else None
        ),
    ),
)
vault = SecretVault(
    "vault",
    SecretVaultArgs(
        prefix=config.secret_prefix,
        recovery_window_days=config.secrets.recovery_window_days,
        kms_key_id=config.secrets.kms_key_id,
        tags={"llm-edge:stack": stack, "managed-by": "pulumi", **disposable_labels(config)},
        entries={
            **edge_protection.vault_entries,
            **{
                keys.tunnel_token(name): VaultEntry(tunnel.token, f"cloudflared connector token, cluster {name}")
                for name, tunnel in tunnels.items()
            },
            **credentials.vault_entries,
            keys.ENDPOINT: VaultEntry(
                json.dumps({"base_url": base_url, "stack": stack, "models": config.served_model_names}),
                "Public OpenAI-compatible endpoint of this stack, for applications",
            ),
        },
    ),
)

# --- what runs in each cluster: connector, gateway, vLLM, alerts, NetworkPolicies -------------
clusters = {
    cluster_name: ClusterInstallation(
        cluster_name,
        ClusterInstallationArgs(
            cluster_name=cluster_name,
            cluster=cluster,
            config=config,
            kubeconfig=(
                secret_config.require_secret(cluster.kubeconfig_config_key) if cluster.kubeconfig_config_key else None
            ),
            secrets=credentials.cluster_secrets(vault, cluster_name),
        ),
    )
    for cluster_name, cluster in config.clusters.items()
}

# --- the public hostname: which cluster(s) take the traffic ----------------------------------
traffic = TrafficSwitch(
    "traffic",
    TrafficSwitchArgs(
        zone_id=zone.zone_id,
        public_hostname=config.public_hostname,
        mode=config.traffic.mode,
        active_cluster=config.active_cluster,
        tunnel_cnames={name: tunnel.cname for name, tunnel in tunnels.items()},
        route_hostnames=[route.hostname for route in config.routes],
        weights=config.traffic_weights,
        load_balancer=config.traffic.load_balancer,
        account_id=config.cloudflare.account_id,
        pool_name_prefix=f"llm-edge-{stack}",
    ),
)

pulumi.export("baseUrl", base_url)
pulumi.export("activeCluster", config.active_cluster)
pulumi.export(
    "traffic",
    {
        "mode": config.traffic.mode,
        "weights": config.traffic_weights if config.traffic.mode == "weighted" else {config.active_cluster: 100},
    },
)
pulumi.export("tunnels", {name: tunnel.tunnel_id for name, tunnel in tunnels.items()})
if config.validation_hostnames:
    pulumi.export("validationUrls", {name: f"https://{host}/v1" for name, host in config.validation_hostnames.items()})
pulumi.export("secretArns", vault.arns_by_path)
