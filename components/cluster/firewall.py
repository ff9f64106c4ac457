"""NamespaceFirewall: NetworkPolicies that make the tunnel the only way in.

Default deny for ingress in the namespace, then one allow per hop of the request path:
connector -> gateway -> vLLM (connector -> vLLM only where no gateway sits in between, or a
hostname route sends the tunnel straight to a model), and metrics ports from the monitoring
namespace only.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.config import DISPOSABLE_LABEL
from components.kube import object_labels

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Allow:
    """Pods matching `to` accept traffic on `ports` from pods matching any of `from_pods`."""

    name: str
    to: dict[str, str]
    ports: list[int | str]
    from_pods: list[dict[str, str]]
    from_monitoring: bool = False
    # Gateway pods of pull-request previews, in namespaces labelled disposable.
    from_preview_gateways: bool = False


@dataclass(frozen=True)
class NamespaceFirewallArgs:
    namespace: pulumi.Input[str]
    instance: str
    monitoring_namespace: str
    allows: list[Allow]


class NamespaceFirewall(pulumi.ComponentResource):
    def __init__(self, name: str, args: NamespaceFirewallArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:cluster:NamespaceFirewall", name, None, opts)
        labels = object_labels("llm-edge-firewall", args.instance, "network-policy")

        def policy(policy_name: str, spec: k8s.networking.v1.NetworkPolicySpecArgs):
            return k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy_name}",
                k8s.networking.v1.NetworkPolicyInitArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=policy_name, namespace=args.namespace, labels=labels),
                    spec=spec,
                ),
                pulumi.ResourceOptions(parent=self),
            )

        # An empty pod selector with no ingress rules: nothing gets in unless allowed below.
        policy(
            "default-deny-ingress",
            k8s.networking.v1.NetworkPolicySpecArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(), policy_types=["Ingress"]),
        )
        for allow in args.allows:
            peers = [
                k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=pods))
                for pods in allow.from_pods
            ]
            if allow.from_monitoring:
                peers.append(
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                            match_labels={NAMESPACE_NAME_LABEL: args.monitoring_namespace}
                        )
                    )
                )
            if allow.from_preview_gateways:
                peers.append(
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={DISPOSABLE_LABEL: "true"}),
                        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"app.kubernetes.io/name": "gateway"}),
                    )
                )
            if not peers:
                # An ingress rule without peers admits every source; nobody to admit means no rule.
                continue
            policy(
                allow.name,
                k8s.networking.v1.NetworkPolicySpecArgs(
                    pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=allow.to),
                    policy_types=["Ingress"],
                    ingress=[
                        k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                            from_=peers,
                            ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=p, protocol="TCP") for p in allow.ports],
                        )
                    ],
                ),
            )
        self.register_outputs({})
