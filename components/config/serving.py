"""Config of what serves requests: models, external backends, hostname routes, the gateway, NetworkPolicies."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from components.config.base import DnsLabel, Hostname, Model, PinnedImage, Quantity, Resources


GATEWAY_SERVICE_URL = "http://gateway.{namespace}.svc.cluster.local:8080"


class ModelCache(Model):
    """Where vLLM keeps downloaded weights: a PersistentVolumeClaim, or emptyDir (re-downloads on restart)."""

    type: Literal["pvc", "emptyDir"] = "pvc"
    size: Quantity = "100Gi"
    storage_class: Optional[Annotated[str, Field(min_length=1)]] = None
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = "ReadWriteOnce"


class ServedModel(Model):
    """One model served by vLLM in every cluster (replicas may be overridden per cluster)."""

    served_name: Optional[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")]] = None
    hugging_face_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")]
    image: PinnedImage = "vllm/vllm-openai:v0.11.0"
    replicas: Annotated[int, Field(ge=0, le=64)] = 1
    gpus_per_replica: Annotated[int, Field(ge=1, le=16)] = 1
    tensor_parallel_size: Annotated[int, Field(ge=1, le=16)] = 1
    max_model_len: Annotated[int, Field(ge=256, le=10_000_000)] = 8192
    gpu_memory_utilization: Annotated[float, Field(gt=0.1, le=0.99)] = 0.9
    extra_args: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    cache: ModelCache = ModelCache()
    shm_size: Quantity = "8Gi"
    # Time allowed for download and load before the startup probe gives up.
    startup_budget_minutes: Annotated[int, Field(ge=30, le=24 * 60)] = 45
    resources: Resources = Resources(cpu_request="4", memory_request="32Gi", cpu_limit="16", memory_limit="64Gi")


class Backend(Model):
    """An OpenAI-compatible server that already exists (GPUStack, Ollama, another vLLM)."""

    # A base URL without path: clients' paths (/v1/...) are appended to it.
    url: Annotated[str, Field(pattern=r"^https?://[^\s/:]+(:[0-9]+)?/?$")]
    models: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    # A secret stack config key holding the backend's API key (injected by the gateway).
    api_key_config_key: Optional[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]] = None
    # A backend that checks no key must never be published by a hostname route without saying so.
    authenticates: bool = False


class Route(Model):
    """An extra public hostname sent straight to one backend or model by the tunnel."""

    hostname: Hostname
    backend: DnsLabel
    # Publish a backend that checks no API key (e.g. Ollama); only behind Cloudflare Access.
    allow_unauthenticated: bool = False


class GatewayClient(Model):
    """An API client: its key is generated, stored in AWS Secrets Manager, and only its hash reaches the cluster."""

    name: DnsLabel
    # Model names the key may use, or ["*"].
    models: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] = ["*"]
    rpm: Optional[Annotated[int, Field(ge=1)]] = None
    tpm: Optional[Annotated[int, Field(ge=1)]] = None


class Gateway(Model):
    """The API-key gateway between the tunnel and the models (see gateway/README.md)."""

    enabled: bool = True
    image: PinnedImage = "ghcr.io/llm-edge/llm-edge-gateway:0.1.0"
    replicas: Annotated[int, Field(ge=2, le=50)] = 2
    max_replicas: Annotated[int, Field(ge=2, le=100)] = 6
    target_cpu_utilization: Annotated[int, Field(ge=10, le=100)] = 70
    clients: list[GatewayClient] = Field(default_factory=list)
    cors_origins: list[Annotated[str, Field(pattern=r"^https?://[a-z0-9.-]+(:[0-9]+)?$")]] = Field(default_factory=list)
    max_body_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    upstream_read_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 300
    drain_grace_seconds: Annotated[int, Field(ge=1, le=600)] = 30
    resources: Resources = Resources(cpu_request="250m", memory_request="128Mi", cpu_limit="1", memory_limit="512Mi")


class NetworkPolicies(Model):
    enabled: bool = True
    # Prometheus runs here; only it may scrape the metrics ports.
    monitoring_namespace: DnsLabel = "monitoring"
    # Let the gateways of pull-request previews (namespaces labelled disposable) reach this
    # stack's vLLM; for the stack previews are made from (dev).
    preview_gateways: bool = False


class ModelPlan(BaseModel):
    """A model as it runs in one cluster."""

    model_config = ConfigDict(frozen=True)

    name: str
    served_name: str
    model: ServedModel
    replicas: int
    gpus_per_replica: int
    tensor_parallel_size: int
    image: str
