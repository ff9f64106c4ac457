"""LimitStore: the Valkey that holds the gateway's shared rpm and tpm in one cluster (`gateway.sharedLimits: in-cluster`).

One pod, no persistence: the keys are rate-limit state with TTLs of at most a minute's refill
(or a client's token debt), so a restart only hands every client a full bucket. While the pod is
away the gateway replicas fall back to their local shares (gateway/README.md, "Limits"), which is
also why it runs without a PodDisruptionBudget: a drain may move it. Only the gateway reaches it
(a NetworkPolicy, components/cluster), and only with the generated password.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.config import GatewaySharedLimitsSettings, Taint
from components.kube import (
    SecretKey,
    cluster_service,
    hardened_container_security,
    non_root_pod_security,
    object_labels,
    pod_metadata,
    resource_requirements,
    rolling_deployment_spec,
    secret_env,
    selector_labels,
    tolerations,
)

APP = "gateway-limits"
PORT = 6379
# The valkey user of the official image (uid and gid 999).
VALKEY_UID = 999
DATA_PATH = "/data"
PASSWORD_ENV = "VALKEY_PASSWORD"


def store_url(namespace: str) -> str:
    return f"redis://{APP}.{namespace}.svc.cluster.local:{PORT}/0"


@dataclass(frozen=True)
class LimitStoreArgs:
    namespace: pulumi.Input[str]
    instance: str
    settings: GatewaySharedLimitsSettings
    password: SecretKey
    tolerated_taints: list[Taint]
    depends_on: list[pulumi.Resource]
    secrets_version: pulumi.Input[str] | None = None


class LimitStore(pulumi.ComponentResource):
    selector: dict[str, str]

    def __init__(self, name: str, args: LimitStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:gateway:LimitStore", name, None, opts)
        self.selector = selector_labels(APP, args.instance)
        labels = object_labels(APP, args.instance, "limit-store")
        metadata = k8s.meta.v1.ObjectMetaArgs(name=APP, namespace=args.namespace, labels=labels)
        probe = k8s.core.v1.ProbeArgs(tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="valkey"), period_seconds=5,
                                      failure_threshold=3)
        container = k8s.core.v1.ContainerArgs(
            name="valkey",
            image=args.settings.image,
            command=["valkey-server"],
            # Kubernetes puts the password in at start (the spec shows only the reference), and
            # Valkey rewrites its process title, so process lists show `valkey-server *:6379`.
            # Nothing is saved: a restart starts from full buckets.
            args=["--requirepass", f"$({PASSWORD_ENV})", "--save", "", "--appendonly", "no", "--dir", DATA_PATH,
                  "--port", str(PORT)],
            env=[secret_env(PASSWORD_ENV, args.password)],
            ports=[k8s.core.v1.ContainerPortArgs(name="valkey", container_port=PORT)],
            readiness_probe=probe,
            liveness_probe=probe,
            resources=resource_requirements(args.settings.resources),
            security_context=hardened_container_security(),
            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="data", mount_path=DATA_PATH)],
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            k8s.apps.v1.DeploymentInitArgs(
                metadata=metadata,
                spec=rolling_deployment_spec(
                    replicas=1,
                    selector=self.selector,
                    max_surge=1,
                    max_unavailable=0,
                    pod_metadata=pod_metadata(labels, args.secrets_version),
                    pod_spec=k8s.core.v1.PodSpecArgs(
                        containers=[container],
                        volumes=[k8s.core.v1.VolumeArgs(
                            name="data", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="64Mi"))],
                        automount_service_account_token=False,
                        security_context=non_root_pod_security(VALKEY_UID),
                        tolerations=tolerations(args.tolerated_taints),
                    ),
                ),
            ),
            pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        self.service = cluster_service(f"{name}-service", metadata, self.selector, "valkey", PORT, self)
        self.register_outputs({})
