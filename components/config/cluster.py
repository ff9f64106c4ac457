"""Config of one Kubernetes cluster: access, tolerations, GPU nodes, per-cluster model overrides, NetworkPolicies."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from components.config.base import DnsLabel, Model, PinnedImage, Taint
from components.config.tunnel import ConnectorSettings

GPU_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
# Labels set by each vendor's GPU feature discovery / node labeller, naming the GPU model.
GPU_PRODUCT_LABEL = {"nvidia": "nvidia.com/gpu.product", "amd": "amd.com/gpu.product-name"}
# GPU nodes are usually tainted; the connector may run anywhere, including there.
DEFAULT_TOLERATED_TAINTS = (
    Taint(key="nvidia.com/gpu"),
    Taint(key="amd.com/gpu"),
    Taint(key="CriticalAddonsOnly"),
)


# A label value: at most 63 characters of letters, digits, `-`, `_` and `.`, starting and ending
# with a letter or digit (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/).
LABEL_VALUE_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"


def _as_the_labeller_writes(product: str) -> str:
    if not re.fullmatch(LABEL_VALUE_PATTERN, product):
        raise ValueError(
            f"{product!r} is not a node label value: write it as the vendor's labeller does, spaces as '_' (AMD) or "
            "'-' (NVIDIA) and no parentheses, e.g. AMD_Instinct_MI300X_OAM or NVIDIA-H100-80GB-HBM3 "
            "(kubectl get nodes -L amd.com/gpu.product-name,nvidia.com/gpu.product shows them)"
        )
    return product


class GpuSettings(Model):
    """The GPU nodes of one cluster."""

    vendor: Literal["nvidia", "amd"] = "nvidia"
    # Taints of the GPU nodes that vLLM pods tolerate; default: the vendor's resource name.
    taints: list[Taint] | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    # Schedule only on these GPU products (node affinity on the vendor's product label). Values are
    # what the labeller derives from the driver's product name: AMD's node labeller replaces spaces
    # by `_` and drops parentheses (ROCm/k8s-device-plugin, cmd/k8s-node-labeller; its docs show
    # `amd.com/gpu.product-name=AMD_Instinct_MI300X_OAM`), NVIDIA's GPU feature discovery uses `-`.
    products: list[Annotated[str, AfterValidator(_as_the_labeller_writes)]] = Field(default_factory=list)

    @property
    def resource_name(self) -> str:
        return GPU_RESOURCE[self.vendor]

    @property
    def product_label(self) -> str:
        return GPU_PRODUCT_LABEL[self.vendor]

    @property
    def tolerated_taints(self) -> list[Taint]:
        return list(self.taints) if self.taints is not None else [Taint(key=self.resource_name)]


class ModelOverride(Model):
    """Per-cluster changes to a model: another GPU count or image (e.g. a ROCm build on AMD)."""

    replicas: Annotated[int, Field(ge=0, le=64)] | None = None
    gpus_per_replica: Annotated[int, Field(ge=1, le=16)] | None = None
    tensor_parallel_size: Annotated[int, Field(ge=1, le=16)] | None = None
    image: PinnedImage | None = None


class ClusterSettings(Model):
    """One Kubernetes cluster: how to reach it and what to run there."""

    # Exactly one of the two: a kubeconfig context on the deploying machine, or the name of a
    # secret stack config key that holds a whole kubeconfig.
    context: Annotated[str, Field(min_length=1)] | None = None
    kubeconfig_config_key: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")] | None = None
    namespace: DnsLabel = "llm-edge"
    tolerated_taints: list[Taint] = Field(default_factory=lambda: list(DEFAULT_TOLERATED_TAINTS))
    connector: ConnectorSettings = ConnectorSettings()
    gpu: GpuSettings = GpuSettings()
    # Model name -> overrides for this cluster; a model not listed runs with its own settings.
    models: dict[str, ModelOverride] = Field(default_factory=dict)
    # The storage class of model caches here, over each model's cache.storageClass: clusters on
    # other clouds name theirs differently (efs-models on EKS, azurefile-csi-premium on AKS).
    cache_storage_class: Annotated[str, Field(min_length=1)] | None = None
    # false: the cluster stays deployed with its tunnel and validation hostname but gets no public
    # traffic (it cannot be traffic.active, has no weight and no load balancer pool).
    enabled: bool = True
    # IAM OIDC provider of this cluster (EKS IRSA), used by external-secrets delivery to read
    # only this stack's secrets; without it the External Secrets controller's own identity is used.
    oidc_provider_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$")] | None = None

    @model_validator(mode="after")
    def _one_way_in(self) -> ClusterSettings:
        if (self.context is None) == (self.kubeconfig_config_key is None):
            raise ValueError(
                "set exactly one of 'context' (a kubeconfig context) or 'kubeconfigConfigKey' "
                "(a secret config key holding a kubeconfig)"
            )
        return self


class NetworkPolicySettings(Model):
    enabled: bool = True
    # Prometheus runs here; only it may scrape the metrics ports.
    monitoring_namespace: DnsLabel = "monitoring"
    # Let the gateways of pull-request previews (namespaces labelled disposable) reach this
    # stack's vLLM; for the stack previews are made from (dev).
    preview_gateways: bool = False
