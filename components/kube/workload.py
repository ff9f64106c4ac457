"""Small builders shared by the Deployments of the stack (connector, gateway, vLLM).

They keep the hardening in one place: every container gets requests and limits, runs without
privileges, and every replicated workload gets a PodDisruptionBudget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.config import Resources, Taint


@dataclass(frozen=True)
class SecretKey:
    """One key of a Kubernetes Secret."""

    secret_name: str
    key: str


# A fingerprint of the versions of the secrets a pod reads from its environment. A container reads
# its environment once, at start, and Kubernetes restarts no pod when a Secret changes; a new
# fingerprint changes the pod template, which rolls the Deployment
# (https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#updating-a-deployment).
SECRETS_VERSION_ANNOTATION = "llm-edge.dev/secrets-version"


def pod_metadata(labels: dict[str, str], secrets_version: pulumi.Input[str] | None,
                 annotations: dict[str, pulumi.Input[str]] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
    """A pod template's metadata: its labels, and the secrets' fingerprint when there is one."""
    annotations = {**(annotations or {}), **({SECRETS_VERSION_ANNOTATION: secrets_version} if secrets_version else {})}
    return k8s.meta.v1.ObjectMetaArgs(labels=labels, annotations=annotations or None)


def secret_env(name: str, ref: SecretKey) -> k8s.core.v1.EnvVarArgs:
    """An environment variable read from a Secret, so the value never appears in the pod spec."""
    return k8s.core.v1.EnvVarArgs(
        name=name,
        value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=ref.secret_name, key=ref.key)
        ),
    )


def http_probe(path: str, port: int | str, period: int, failures: int, timeout: int | None = None) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=port),
        period_seconds=period,
        failure_threshold=failures,
        timeout_seconds=timeout,
    )


def resource_requirements(resources: Resources, extra_limits: dict[str, str] | None = None) -> k8s.core.v1.ResourceRequirementsArgs:
    limits = {"cpu": resources.cpu_limit, "memory": resources.memory_limit, **(extra_limits or {})}
    return k8s.core.v1.ResourceRequirementsArgs(
        requests={"cpu": resources.cpu_request, "memory": resources.memory_request, **(extra_limits or {})},
        limits=limits,
    )


def tolerations(taints: Sequence[Taint]) -> list[k8s.core.v1.TolerationArgs]:
    return [
        k8s.core.v1.TolerationArgs(
            key=t.key,
            operator="Equal" if t.value is not None else "Exists",
            value=t.value,
            effect=t.effect,
        )
        for t in taints
    ]


def hardened_container_security(read_only_root: bool = True) -> k8s.core.v1.SecurityContextArgs:
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        read_only_root_filesystem=read_only_root,
        run_as_non_root=True,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
    )


def non_root_pod_security(uid: int, sysctls: dict[str, str] | None = None) -> k8s.core.v1.PodSecurityContextArgs:
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        fs_group=uid,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        sysctls=[k8s.core.v1.SysctlArgs(name=k, value=v) for k, v in (sysctls or {}).items()] or None,
    )


def spread_across_nodes(selector: dict[str, str]) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    """Prefer one replica per node and per zone; a small cluster still schedules them all."""
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key=key,
            when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
        )
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]


def rolling_deployment_spec(
    # None when an autoscaler owns the count.
    replicas: int | None,
    selector: dict[str, str],
    pod_metadata: k8s.meta.v1.ObjectMetaArgs,
    pod_spec: k8s.core.v1.PodSpecArgs,
    max_surge: int,
    max_unavailable: int,
) -> k8s.apps.v1.DeploymentSpecArgs:
    return k8s.apps.v1.DeploymentSpecArgs(
        replicas=replicas,
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
        strategy=k8s.apps.v1.DeploymentStrategyArgs(
            type="RollingUpdate",
            rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=max_surge, max_unavailable=max_unavailable),
        ),
        template=k8s.core.v1.PodTemplateSpecArgs(metadata=pod_metadata, spec=pod_spec),
    )


def cluster_service(
    name: str,
    metadata: k8s.meta.v1.ObjectMetaArgs,
    selector: dict[str, str],
    port_name: str,
    port: int,
    parent: pulumi.Resource,
) -> k8s.core.v1.Service:
    """A ClusterIP Service on one named container port: reachable inside the cluster only."""
    return k8s.core.v1.Service(
        name,
        k8s.core.v1.ServiceInitArgs(
            metadata=metadata,
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector,
                ports=[k8s.core.v1.ServicePortArgs(name=port_name, port=port, target_port=port_name)],
            ),
        ),
        pulumi.ResourceOptions(parent=parent),
    )


def disruption_budget(
    name: str,
    metadata: k8s.meta.v1.ObjectMetaArgs,
    selector: dict[str, str],
    parent: pulumi.Resource,
    max_unavailable: int = 1,
) -> k8s.policy.v1.PodDisruptionBudget:
    return k8s.policy.v1.PodDisruptionBudget(
        name,
        k8s.policy.v1.PodDisruptionBudgetInitArgs(
            metadata=metadata,
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=max_unavailable,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            ),
        ),
        pulumi.ResourceOptions(parent=parent),
    )
