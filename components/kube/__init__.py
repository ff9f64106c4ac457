"""Kubernetes building blocks shared by the areas that run pods (tunnel, gateway, inference, cluster).

Not an area of its own (no component lives here): the labels every object carries, and the pod
and Deployment builders that keep the hardening in one place.
"""

from components.kube.labels import PART_OF, object_labels, selector_labels
from components.kube.workload import (
    SECRETS_VERSION_ANNOTATION,
    SecretKey,
    cluster_service,
    disruption_budget,
    hardened_container_security,
    http_probe,
    non_root_pod_security,
    pod_metadata,
    resource_requirements,
    rolling_deployment_spec,
    secret_env,
    spread_across_nodes,
    tolerations,
)

__all__ = [
    "PART_OF", "SECRETS_VERSION_ANNOTATION", "SecretKey",
    "cluster_service", "disruption_budget", "hardened_container_security", "http_probe", "non_root_pod_security",
    "object_labels", "pod_metadata", "resource_requirements", "rolling_deployment_spec", "secret_env", "selector_labels",
    "spread_across_nodes", "tolerations",
]
