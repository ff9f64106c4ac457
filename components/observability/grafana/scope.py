"""What the dashboards of one cluster know about it, and the selectors of its workloads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from components.observability.grafana.promql import selector

CLOUDFLARED = selector("cloudflared")
GATEWAY = selector("gateway")
# The models and clients chosen in the dashboard's variables.
CHOSEN_MODELS = 'model=~"$model"'
CHOSEN_CLIENTS = 'client=~"$client"'
GATEWAY_CHOSEN = selector("gateway", CHOSEN_MODELS, CHOSEN_CLIENTS)
GATEWAY_MODELS = selector("gateway", CHOSEN_MODELS)
# vLLM labels its series with the served model name: the same names the gateway's `model` has.
VLLM = selector("vllm", 'model_name=~"$model"')
# A healthy connector holds four connections to Cloudflare's edge (two data centres, two each).
CONNECTIONS_PER_CONNECTOR = 4


@dataclass(frozen=True)
class DashboardScope:
    instance: str
    # The namespace variable's default: this cluster's own.
    namespace: str
    connector_replicas: int
    gateway: bool
    # vLLM Deployments of this cluster (`vllm-<model>`), none in a preview.
    vllm_deployments: tuple[str, ...]
    gpu_vendor: Literal["nvidia", "amd"]
    runbook_url: str
    # The gateway keeps its limits in a shared store (gateway.sharedLimits).
    shared_limits: bool = False

    @property
    def deployments(self) -> str:
        """kube-state-metrics matcher for the vLLM Deployments."""
        return f'deployment=~"{"|".join(self.vllm_deployments)}"'

    @property
    def pods(self) -> str:
        """Matcher for the pods of the vLLM Deployments (`<deployment>-<replicaset hash>-<id>`)."""
        return f'pod=~"({"|".join(self.vllm_deployments)})-.*"'
