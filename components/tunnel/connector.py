"""CloudflaredConnector: the cloudflared Deployment that dials out to Cloudflare for one tunnel.

Follows Cloudflare's Kubernetes guide (token in `TUNNEL_TOKEN`, `--no-autoupdate`, metrics and
`/ready` on :2000) and hardens it: pinned image, replicas spread across nodes, tolerations for
tainted GPU nodes, requests and limits, non-root with a read-only root filesystem, and a
PodDisruptionBudget so that node drains never take the tunnel down.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.config import Resources, Taint
from components.kube import (
    SecretKey,
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

APP = "cloudflared"
METRICS_PORT = 2000
# The distroless cloudflared image runs as this user.
NONROOT_UID = 65532


@dataclass(frozen=True)
class CloudflaredConnectorArgs:
    namespace: pulumi.Input[str]
    instance: str
    replicas: int
    image: str
    resources: Resources
    tolerated_taints: list[Taint]
    token: SecretKey
    depends_on: list[pulumi.Resource]
    secrets_version: pulumi.Input[str] | None = None


class CloudflaredConnector(pulumi.ComponentResource):
    selector: dict[str, str]
    deployment: k8s.apps.v1.Deployment

    def __init__(self, name: str, args: CloudflaredConnectorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:tunnel:CloudflaredConnector", name, None, opts)
        self.selector = selector_labels(APP, args.instance)
        metadata = k8s.meta.v1.ObjectMetaArgs(
            name=APP, namespace=args.namespace, labels=object_labels(APP, args.instance, "connector")
        )
        container = k8s.core.v1.ContainerArgs(
            name=APP,
            image=args.image,
            args=["tunnel", "--no-autoupdate", "--loglevel", "info", "--metrics", f"0.0.0.0:{METRICS_PORT}", "run"],
            env=[secret_env("TUNNEL_TOKEN", args.token)],
            ports=[k8s.core.v1.ContainerPortArgs(name="metrics", container_port=METRICS_PORT)],
            # /ready answers 200 only while the connector holds at least one connection to the edge.
            liveness_probe=http_probe("/ready", METRICS_PORT, 10, 3),
            readiness_probe=http_probe("/ready", METRICS_PORT, 5, 1),
            resources=resource_requirements(args.resources),
            security_context=hardened_container_security(),
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            k8s.apps.v1.DeploymentInitArgs(
                metadata=metadata,
                spec=rolling_deployment_spec(
                    replicas=args.replicas,
                    selector=self.selector,
                    max_surge=1,
                    max_unavailable=0,
                    pod_metadata=pod_metadata(object_labels(APP, args.instance, "connector"), args.secrets_version),
                    pod_spec=k8s.core.v1.PodSpecArgs(
                        containers=[container],
                        automount_service_account_token=False,
                        # Lets cloudflared proxy ICMP (ping, traceroute) as its own user, as in Cloudflare's guide.
                        security_context=non_root_pod_security(
                            NONROOT_UID, sysctls={"net.ipv4.ping_group_range": f"{NONROOT_UID} {NONROOT_UID}"}
                        ),
                        tolerations=tolerations(args.tolerated_taints),
                        topology_spread_constraints=spread_across_nodes(self.selector),
                        termination_grace_period_seconds=40,
                    ),
                ),
            ),
            pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        self.disruption_budget = disruption_budget(
            f"{name}-pdb",
            k8s.meta.v1.ObjectMetaArgs(
                name=APP, namespace=args.namespace, labels=object_labels(APP, args.instance, "connector")
            ),
            self.selector,
            self,
        )
        self.register_outputs({})
