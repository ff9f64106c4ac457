"""Readers over Kubernetes objects as the Pulumi engine records them: camelCase dicts
(`apiVersion`, `kind`, `metadata`, `spec`), the same shape the policy engine passes to rules."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

KUBERNETES = "kubernetes:"
# Resource types whose objects carry a pod template, and where the pod spec sits.
POD_SPEC_PATHS = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
IMAGE_PATTERN = re.compile(
    r"^([a-z0-9.-]+(:[0-9]+)?/)?[a-z0-9._/-]+(:[0-9A-Za-z_][0-9A-Za-z_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)


def dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    path = POD_SPEC_PATHS.get(resource_type)
    return dig(props, *path) if path else None


def pod_labels(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, str]:
    """Labels of the pods: the template's for controllers, the object's own for a Pod."""
    path = POD_SPEC_PATHS.get(resource_type)
    if path is None:
        return {}
    return dig(props, *path[:-1], "metadata", "labels") or {}


def containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for field in ("initContainers", "containers"):
        yield from spec.get(field) or []


def workload_containers(resource_type: str, props: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every container of a resource's pods; none for a resource without a pod template."""
    spec = pod_spec(resource_type, props)
    if spec is not None:
        yield from containers(spec)


def gpu_requests(spec: Mapping[str, Any]) -> dict[str, str]:
    """GPU resource name -> amount, over every container's requests and limits."""
    found = {}
    for container in containers(spec):
        for section in ("requests", "limits"):
            for name, amount in (dig(container, "resources", section) or {}).items():
                if name in GPU_RESOURCES and str(amount) not in ("0", ""):
                    found[name] = str(amount)
    return found


def is_pinned_image(image: Any) -> bool:
    """A version tag other than `latest`, or a digest."""
    if not isinstance(image, str) or not IMAGE_PATTERN.match(image):
        return False
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else None
    return "@sha256:" in image or (tag is not None and tag != "latest")


def object_name(props: Mapping[str, Any]) -> str:
    metadata = props.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata.get('name')}" if namespace else str(metadata.get("name"))
