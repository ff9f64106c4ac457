"""Config of what answers requests: the models vLLM serves, and existing OpenAI-compatible backends."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from components.config.base import Model, PinnedImage, Quantity, Resources


def model_service_name(model_name: str) -> str:
    """The Kubernetes Service (and Deployment) of a model in each cluster: `vllm-<model key>`."""
    return f"vllm-{model_name}"


# Service names are DNS labels: "at most 63 characters" (Kubernetes object names and IDs).
SERVICE_NAME_LIMIT = 63
MODEL_KEY_LIMIT = SERVICE_NAME_LIMIT - len(model_service_name(""))


class ModelCacheSettings(Model):
    """Where vLLM keeps downloaded weights: a PersistentVolumeClaim, or emptyDir (re-downloads on restart)."""

    type: Literal["pvc", "emptyDir"] = "pvc"
    size: Quantity = "100Gi"
    storage_class: Annotated[str, Field(min_length=1)] | None = None
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = "ReadWriteOnce"


class ModelSettings(Model):
    """One model served by vLLM in every cluster (replicas may be overridden per cluster)."""

    served_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")] | None = None
    hugging_face_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")]
    image: PinnedImage = "vllm/vllm-openai:v0.11.0"
    replicas: Annotated[int, Field(ge=0, le=64)] = 1
    gpus_per_replica: Annotated[int, Field(ge=1, le=16)] = 1
    tensor_parallel_size: Annotated[int, Field(ge=1, le=16)] = 1
    max_model_len: Annotated[int, Field(ge=256, le=10_000_000)] = 8192
    gpu_memory_utilization: Annotated[float, Field(gt=0.1, le=0.99)] = 0.9
    extra_args: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    cache: ModelCacheSettings = ModelCacheSettings()
    shm_size: Quantity = "8Gi"
    # Time allowed for download and load before the startup probe gives up.
    startup_budget_minutes: Annotated[int, Field(ge=30, le=24 * 60)] = 45
    resources: Resources = Resources(cpu_request="4", memory_request="32Gi", cpu_limit="16", memory_limit="64Gi")
    # How the gateway spreads this model's requests over its replicas (gateway/README.md, "Routing"):
    # by prompt prefix, so a conversation keeps hitting the replica whose KV cache holds it, with
    # bounded load; or by fewest requests in flight.
    routing: Literal["prefix_affinity", "least_outstanding"] = "prefix_affinity"
    # prefix_affinity passes a replica over once one more request would put it above this
    # factor of the mean load (rounded up, the new request counted).
    routing_load_factor: Annotated[float, Field(ge=1.0, le=10.0)] = 1.25


class BackendSettings(Model):
    """An OpenAI-compatible server that already exists (GPUStack, Ollama, another vLLM)."""

    # A base URL without path: clients' paths (/v1/...) are appended to it.
    url: Annotated[str, Field(pattern=r"^https?://[^\s/:]+(:[0-9]+)?/?$")]
    models: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    # A secret stack config key holding the backend's API key (injected by the gateway).
    api_key_config_key: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")] | None = None
    # A backend that checks no key must never be published by a hostname route without saying so.
    authenticates: bool = False


class ModelPlan(BaseModel):
    """A model as it runs in one cluster: its settings with that cluster's overrides applied."""

    model_config = ConfigDict(frozen=True)

    name: str
    served_name: str
    model: ModelSettings
    replicas: int
    gpus_per_replica: int
    tensor_parallel_size: int
    image: str
    cache_storage_class: str | None
