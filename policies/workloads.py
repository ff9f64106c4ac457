"""Containers: bounded resources, pinned images, GPUs only where they belong, cloudflared frozen."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ResourceValidationPolicy

from .kube import GPU_RESOURCES, dig, gpu_requests, is_pinned_image, object_name, pod_labels, pod_spec, workload_containers

REQUIRED = ("cpu", "memory")


def _requests_and_limits(args, report_violation):
    for container in workload_containers(args.resource_type, args.props):
        for section in ("requests", "limits"):
            missing = [r for r in REQUIRED if r not in (dig(container, "resources", section) or {})]
            if missing:
                report_violation(
                    f"{object_name(args.props)}: container {container.get('name')} has no {section} for "
                    f"{', '.join(missing)}: set resources.{section} so the scheduler and the kubelet can bound it."
                )


def _pinned_images(args, report_violation):
    for container in workload_containers(args.resource_type, args.props):
        image = container.get("image")
        if not is_pinned_image(image):
            report_violation(
                f"{object_name(args.props)}: container {container.get('name')} image {image!r} is not pinned: "
                "use an explicit version tag (not 'latest') or a digest, so a restart never changes what runs."
            )


def _pinned_by_digest(args, report_violation):
    for container in workload_containers(args.resource_type, args.props):
        image = container.get("image")
        if isinstance(image, str) and is_pinned_image(image) and "@sha256:" not in image:
            report_violation(
                f"{object_name(args.props)}: container {container.get('name')} image {image!r} is pinned by tag only: "
                "a registry can move a tag; add the digest (name:tag@sha256:...) so every node runs the same bytes."
            )


def _cloudflared_no_autoupdate(args, report_violation):
    for container in workload_containers(args.resource_type, args.props):
        if "cloudflared" not in str(container.get("image", "")):
            continue
        words = [*(container.get("command") or []), *(container.get("args") or [])]
        if "--no-autoupdate" not in words:
            report_violation(
                f"{object_name(args.props)}: cloudflared container {container.get('name')} runs without "
                "--no-autoupdate: it would replace its own binary; the image tag is the version."
            )


def _tolerates(spec, taint: dict) -> bool:
    """Whether a toleration of the pod matches the taint, as the scheduler matches them
    (https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/): the same key
    (or an empty key with Exists: every taint), the same effect (or none: every effect), and
    Exists, or Equal with the same value. A taint given without a value or effect may have any:
    only a toleration that matches whatever it is counts."""
    for toleration in spec.get("tolerations") or []:
        key, operator = toleration.get("key") or "", toleration.get("operator") or "Equal"
        if key != taint["key"] and not (key == "" and operator == "Exists"):
            continue
        effect = toleration.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        if operator == "Exists" or (taint.get("value") is not None and toleration.get("value") == taint["value"]):
            return True
    return False


def _gpu_pools(configured: list, resource_name: str) -> list[list[dict]]:
    """The taints of each kind of GPU node a pod may be meant for: the usual convention, a
    NoSchedule taint keyed by the resource name of any value (for example
    nvidia.com/gpu=true:NoSchedule), and the node pools configured (gpuNodeTaints)."""
    return [[{"key": resource_name, "effect": "NoSchedule"}], *configured]


def _describe(taint: dict) -> str:
    value = f"={taint['value']}" if taint.get("value") is not None else ""
    return f"{taint['key']}{value}" + (f":{taint['effect']}" if taint.get("effect") else "")


def _gpu_scheduling(args, report_violation):
    spec = pod_spec(args.resource_type, args.props)
    if spec is None:
        return
    label, value = args.get_config().get("gpuWorkloadLabel", "app.kubernetes.io/component=inference").split("=", 1)
    is_gpu_workload = pod_labels(args.resource_type, args.props).get(label) == value
    requested = gpu_requests(spec)
    name = object_name(args.props)
    if is_gpu_workload and not requested:
        report_violation(f"{name} is a GPU workload ({label}={value}) but requests no GPU ({' or '.join(GPU_RESOURCES)}).")
    if requested and not is_gpu_workload:
        report_violation(
            f"{name} requests {', '.join(sorted(requested))} but is not a GPU workload ({label}={value}): "
            "only model servers may hold GPUs."
        )
    for resource_name in sorted(requested):
        pools = _gpu_pools(args.get_config().get("gpuNodeTaints") or [], resource_name)
        if not any(all(_tolerates(spec, taint) for taint in pool) for pool in pools):
            described = " or ".join(", ".join(_describe(t) for t in pool) for pool in pools)
            report_violation(
                f"{name} requests {resource_name} but does not tolerate the taints of any GPU node pool ({described}): "
                "its pods would stay Pending. Other node pools' taints are this policy's gpuNodeTaints."
            )


requests_and_limits = ResourceValidationPolicy(
    name="requests-and-limits",
    description="Every container sets CPU and memory requests and limits.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_requests_and_limits,
)
pinned_images = ResourceValidationPolicy(
    name="pinned-images",
    description="Every container image names a version tag (not latest) or a digest.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_pinned_images,
)
images_pinned_by_digest = ResourceValidationPolicy(
    name="images-pinned-by-digest",
    description="Container images carry a digest, not only a tag (advisory: a warning in prod).",
    enforcement_level=EnforcementLevel.ADVISORY,
    validate=_pinned_by_digest,
)
cloudflared_no_autoupdate = ResourceValidationPolicy(
    name="cloudflared-no-autoupdate",
    description="cloudflared runs with --no-autoupdate: the image tag decides its version.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_cloudflared_no_autoupdate,
)
gpu_scheduling = ResourceValidationPolicy(
    name="gpu-scheduling",
    description="GPU pods request GPUs and tolerate the taints of a GPU node pool (the vendor's resource name, or "
                "gpuNodeTaints); other pods request no GPU.",
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={
            "gpuWorkloadLabel": {
                "type": "string",
                "pattern": "^[^=]+=.*$",
                "default": "app.kubernetes.io/component=inference",
                "description": "label=value marking pods that are GPU workloads",
            },
            "gpuNodeTaints": {
                "type": "array",
                "default": [],
                "description": "the taints of each GPU node pool beyond the usual <resource name>:NoSchedule, one list "
                               "per pool, as clusters.<name>.gpu.taints (e.g. AKS's [{key: sku, value: gpu, effect: "
                               "NoSchedule}]): a GPU pod must tolerate every taint of one pool",
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["key"],
                        "additionalProperties": False,
                        "properties": {
                            "key": {"type": "string", "minLength": 1},
                            "value": {"type": ["string", "null"]},
                            "effect": {"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]},
                        },
                    },
                },
            },
        }
    ),
    validate=_gpu_scheduling,
)

POLICIES = [requests_and_limits, pinned_images, images_pinned_by_digest, cloudflared_no_autoupdate, gpu_scheduling]
