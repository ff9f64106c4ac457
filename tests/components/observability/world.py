"""A synthetic world for the dashboards: the series one cluster of a rendered stack would have in
its Prometheus, healthy or failing, as OpenMetrics for `promtool tsdb create-blocks-from`.

What runs (connectors, gateway clients and models, vLLM Deployments, GPU vendor) comes from the
cluster's rendered objects. The gateway's series are produced by the gateway's own Metrics class;
the others carry the labels their exporters and the PodMonitors give them (namespace, job, pod),
with names from exporters.py, which test_dashboards.py holds the world to.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import yaml

from gateway.metrics import Metrics, Outcome

STEP_SECONDS = 15
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


@dataclass(frozen=True)
class ClusterFacts:
    connector_replicas: int
    gateway_replicas: int
    gateway_max_replicas: int
    # served model -> upstream addresses; client -> the models it may use
    gateway_models: dict[str, list[str]]
    clients: dict[str, list[str]]
    # vLLM Deployment -> (served model name, replicas, GPUs per pod)
    vllm: dict[str, tuple[str, int, int]]
    gpu_vendor: str
    # The gateway keeps its limits in a shared store (its config has shared_limits).
    shared_limits: bool = False


def facts(objects: list[dict]) -> ClusterFacts:
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    config = next((yaml.safe_load(o["data"]["config.yaml"]) for o in objects
                   if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "gateway"), None)
    autoscaler = next((o for o in objects if o["kind"] == "HorizontalPodAutoscaler"), None)
    vllm, vendor = {}, "nvidia"
    for name, deployment in deployments.items():
        if deployment["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name") != "vllm":
            continue
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        served = container["args"][container["args"].index("--served-model-name") + 1]
        limits = container["resources"]["limits"]
        vendor = "amd" if "amd.com/gpu" in limits else "nvidia"
        gpus = int(limits.get("amd.com/gpu", limits.get("nvidia.com/gpu", 0)))
        vllm[name] = (served, deployment["spec"]["replicas"], gpus)
    models = {name: model["upstreams"] for name, model in (config or {}).get("models", {}).items()}
    clients = {c["name"]: list(models) if "*" in c.get("models", ["*"]) else c["models"] for c in (config or {}).get("clients", [])}
    return ClusterFacts(
        connector_replicas=deployments["cloudflared"]["spec"]["replicas"],
        # The gateway's autoscaler owns its replica count (the Deployment sets none).
        gateway_replicas=autoscaler["spec"]["minReplicas"] if autoscaler else 0,
        gateway_max_replicas=autoscaler["spec"]["maxReplicas"] if autoscaler else 0,
        gateway_models=models, clients=clients, vllm=vllm, gpu_vendor=vendor,
        shared_limits="shared_limits" in (config or {}),
    )


class Samples:
    """Series -> [(timestamp, value)], written out as OpenMetrics."""

    def __init__(self) -> None:
        self.series: dict[str, list[tuple[float, float]]] = defaultdict(list)

    def add(self, t: float, name: str, labels: dict[str, str], value: float) -> None:
        key = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        self.series[key].append((t, value))

    def names(self) -> set[str]:
        return {key.split("{", 1)[0] for key in self.series}

    def openmetrics(self) -> str:
        # One series after the other, same names together: OpenMetrics does not interleave families.
        lines = [f"{key} {value:g} {t:.3f}" for key in sorted(self.series) for t, value in self.series[key]]
        return "\n".join([*lines, "# EOF", ""])


class World:
    """One namespace of one cluster over `steps` scrapes ending at `end`."""

    def __init__(self, samples: Samples, cluster: ClusterFacts, namespace: str, failing: bool, end: float, steps: int):
        self.samples, self.cluster, self.namespace, self.failing = samples, cluster, namespace, failing
        self.times = [end - STEP_SECONDS * (steps - 1 - i) for i in range(steps)]

    def build(self) -> None:
        gateways = [Metrics(limit_store=self.cluster.shared_limits) for _ in range(self.cluster.gateway_replicas)]
        for step, t in enumerate(self.times):
            self.cloudflared(t, step)
            for index, metrics in enumerate(gateways):
                self.gateway(t, metrics, f"gateway-5d8f7c9b6-{index}")
            for deployment, (served, replicas, gpus) in self.cluster.vllm.items():
                for index in range(replicas):
                    self.vllm(t, step, served, f"{deployment}-6c4d8b7f9-{index}", gpus)
            self.kube_state(t, step)

    def scraped(self, t: float, name: str, job: str, pod: str, value: float, **labels: str) -> None:
        """A series scraped from a pod by its PodMonitor."""
        self.samples.add(t, name, {"namespace": self.namespace, "job": job, "pod": pod, **labels}, value)

    def cloudflared(self, t: float, step: int) -> None:
        for index in range(self.cluster.connector_replicas):
            pod = f"cloudflared-7b9c5d8f4-{index}"
            requests = 150 * step
            self.scraped(t, "cloudflared_tunnel_ha_connections", "cloudflared", pod, 0 if self.failing else 4)
            self.scraped(t, "cloudflared_tunnel_total_requests", "cloudflared", pod, requests)
            self.scraped(t, "cloudflared_tunnel_request_errors", "cloudflared", pod, 30 * step if self.failing else 0)
            self.scraped(t, "cloudflared_tunnel_response_by_code", "cloudflared", pod, requests, status_code="200")
            if self.failing:
                self.scraped(t, "cloudflared_tunnel_response_by_code", "cloudflared", pod, 30 * step, status_code="502")
            self.scraped(t, "cloudflared_tunnel_concurrent_requests_per_tunnel", "cloudflared", pod, 40 if self.failing else 3)
            for connection in range(4):
                self.scraped(t, "quic_client_smoothed_rtt", "cloudflared", pod, 18 + connection, conn_index=str(connection))

    def gateway(self, t: float, metrics: Metrics, pod: str) -> None:
        """A few requests of every client for every model, through the gateway's own metrics."""
        for client, models in self.cluster.clients.items():
            for model in models:
                for status in [200] * 5 + [429] + ([502, 502, 500] if self.failing else []):
                    outcome = Outcome()
                    outcome.client, outcome.model, outcome.status = client, model, status
                    outcome.prompt_tokens, outcome.completion_tokens = (40, 200) if status == 200 else (0, 0)
                    metrics.record(outcome, 30.0 if self.failing else 0.8)
                metrics.child(metrics.rate_limited, client, "rpm").inc()
                metrics.child(metrics.ttft, model).observe(12.0 if self.failing else 0.2)
        for model, upstreams in self.cluster.gateway_models.items():
            metrics.model_healthy_upstreams.labels(model).set(0 if self.failing else len(upstreams))
            for upstream in upstreams:
                metrics.upstream_healthy.labels(model, upstream).set(0 if self.failing else 1)
                metrics.upstream_outstanding.labels(model, upstream).set(2)
                if self.failing:
                    metrics.upstream_failures.labels(model, upstream).inc(3)
        metrics.in_flight.set(4)
        if metrics.limit_store_up is not None and metrics.limit_store_errors is not None:
            metrics.limit_store_up.set(0 if self.failing else 1)
            if self.failing:
                metrics.limit_store_errors.labels("timeout").inc(2)
        for family in metrics.registry.collect():
            for sample in family.samples:
                if not sample.name.endswith("_created"):
                    self.scraped(t, sample.name, "gateway", pod, sample.value, **sample.labels)

    def vllm(self, t: float, step: int, served: str, pod: str, gpus: int) -> None:
        labels = {"model_name": served, "engine": "0"}
        for name, healthy, failing in (
            ("vllm:num_requests_running", 4, 30), ("vllm:num_requests_waiting", 0, 25), ("vllm:kv_cache_usage_perc", 0.4, 0.99),
        ):
            self.scraped(t, name, "vllm", pod, failing if self.failing else healthy, **labels)
        for name, per_step in (("vllm:prompt_tokens_total", 2000), ("vllm:generation_tokens_total", 500),
                               ("vllm:num_preemptions_total", 5 if self.failing else 0)):
            self.scraped(t, name, "vllm", pod, per_step * step, **labels)
        for name, healthy, failing in (("vllm:time_to_first_token_seconds", 0.1, 15), ("vllm:inter_token_latency_seconds", 0.02, 0.5),
                                       ("vllm:e2e_request_latency_seconds", 5, 110)):
            self.histogram(t, step, name, "vllm", pod, failing if self.failing else healthy, labels)
        for gpu in range(gpus):
            self.gpu(t, pod, gpu)

    def histogram(self, t: float, step: int, name: str, job: str, pod: str, value: float, labels: dict[str, str]) -> None:
        observations = 10 * step
        for bound in BUCKETS:
            self.scraped(t, f"{name}_bucket", job, pod, observations if value <= bound else 0, le=f"{bound:g}", **labels)
        self.scraped(t, f"{name}_bucket", job, pod, observations, le="+Inf", **labels)
        self.scraped(t, f"{name}_count", job, pod, observations, **labels)
        self.scraped(t, f"{name}_sum", job, pod, observations * value, **labels)

    def gpu(self, t: float, pod: str, gpu: int) -> None:
        """dcgm-exporter scraped with honorLabels: false (its chart's default), AMD's with true (its chart's)."""
        node = f"gpu-node-{pod[-1]}"
        if self.cluster.gpu_vendor == "nvidia":
            labels = {"namespace": "gpu-operator", "job": "nvidia-dcgm-exporter", "pod": "nvidia-dcgm-exporter-x2k9p",
                      "exported_namespace": self.namespace, "exported_pod": pod, "Hostname": node, "gpu": str(gpu),
                      "modelName": "NVIDIA H100 80GB HBM3"}
            for name, value in (("DCGM_FI_DEV_GPU_UTIL", 72), ("DCGM_FI_DEV_FB_USED", 70000), ("DCGM_FI_DEV_FB_FREE", 11000)):
                self.samples.add(t, name, labels, value)
        else:
            labels = {"namespace": self.namespace, "job": "amd-device-metrics-exporter", "pod": pod, "hostname": node,
                      "gpu_id": str(gpu), "card_model": "AMD Instinct MI300X"}
            for name, value in (("gpu_gfx_activity", 65), ("gpu_used_vram", 150000), ("gpu_total_vram", 196000)):
                self.samples.add(t, name, labels, value)

    def kube_state(self, t: float, step: int) -> None:
        """kube-state-metrics (scraped with honorLabels: true: `namespace` is the object's)."""

        def ksm(name: str, value: float, **labels: str) -> None:
            self.samples.add(t, name, {"namespace": self.namespace, "job": "kube-state-metrics", **labels}, value)

        for deployment, (_, replicas, gpus) in self.cluster.vllm.items():
            ksm("kube_deployment_spec_replicas", replicas, deployment=deployment)
            ksm("kube_deployment_status_replicas_ready", 0 if self.failing else replicas, deployment=deployment)
            for index in range(replicas):
                pod = f"{deployment}-6c4d8b7f9-{index}"
                phase = "Pending" if self.failing and index == 0 else "Running"
                for each in PHASES:
                    ksm("kube_pod_status_phase", 1 if each == phase else 0, pod=pod, phase=each)
                resource = "amd_com_gpu" if self.cluster.gpu_vendor == "amd" else "nvidia_com_gpu"
                ksm("kube_pod_container_resource_requests", gpus, pod=pod, container="vllm", resource=resource, unit="integer")
                ksm("kube_pod_container_status_restarts_total", step if self.failing else 0, pod=pod, container="vllm")
        if self.cluster.gateway_replicas:
            hpa = {"horizontalpodautoscaler": "gateway"}
            ksm("kube_horizontalpodautoscaler_status_current_replicas", self.cluster.gateway_replicas, **hpa)
            ksm("kube_horizontalpodautoscaler_spec_max_replicas", self.cluster.gateway_max_replicas, **hpa)
