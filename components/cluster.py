"""ClusterStack: everything that runs in one Kubernetes cluster, behind its own tunnel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.config import Cluster, StackConfig
from components.connector import CloudflaredConnector, CloudflaredConnectorArgs
from components.labels import PART_OF
from components.secret_delivery import SecretDelivery, SecretDeliveryArgs, SecretRef

TUNNEL_TOKEN_SECRET = "cloudflared-token"
TUNNEL_TOKEN_KEY = "token"


@dataclass(frozen=True)
class ClusterStackArgs:
    cluster_name: str
    cluster: Cluster
    config: StackConfig
    # A whole kubeconfig (secret), when the cluster is not reached through a local context.
    kubeconfig: Optional[pulumi.Input[str]]
    tunnel_token: SecretRef


class ClusterStack(pulumi.ComponentResource):
    provider: k8s.Provider
    namespace: k8s.core.v1.Namespace

    def __init__(self, name: str, args: ClusterStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:cluster:ClusterStack", name, None, opts)
        cluster, config = args.cluster, args.config
        instance = f"{config.stack}-{args.cluster_name}"
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
                        # vLLM images run as root, so `restricted` is only warned about, not enforced.
                        "pod-security.kubernetes.io/enforce": "baseline",
                        "pod-security.kubernetes.io/warn": "restricted",
                        "pod-security.kubernetes.io/audit": "restricted",
                    },
                )
            ),
            in_cluster,
        )
        namespace = self.namespace.metadata.apply(lambda m: m.name)
        self.secrets = SecretDelivery(
            f"{name}-secrets",
            SecretDeliveryArgs(
                mode=config.secrets.delivery,
                namespace=namespace,
                namespace_name=cluster.namespace,
                instance=instance,
                secrets={TUNNEL_TOKEN_SECRET: {TUNNEL_TOKEN_KEY: args.tunnel_token}},
                region=config.secrets.region,
                refresh_interval=config.secrets.refresh_interval,
                oidc_provider_arn=cluster.oidc_provider_arn,
                kms_key_id=config.secrets.kms_key_id,
                role_name=f"{instance}-secrets-reader"[:64],
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
                token_secret_name=TUNNEL_TOKEN_SECRET,
                token_secret_key=TUNNEL_TOKEN_KEY,
                depends_on=self.secrets.ready,
            ),
            in_cluster,
        )
        self.register_outputs({})
