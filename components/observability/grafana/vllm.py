"""The vLLM dashboard: per model, load, KV cache, latency and throughput as vLLM measures them,
its Deployments' replicas (kube-state-metrics) and the GPUs of the cluster's vendor.

Names are vLLM's documented `vllm:` metrics. Two were renamed in versions this stack still runs
(vllm/vllm-openai and rocm/vllm images pin 0.10 and 0.11): `vllm:gpu_cache_usage_perc` became
`vllm:kv_cache_usage_perc`, and `vllm:time_per_output_token_seconds` became
`vllm:inter_token_latency_seconds` in 0.11 (vllm-project/vllm#24110); queries read either.
"""

from __future__ import annotations

from components.observability.grafana import gpus, promql
from components.observability.grafana.panels import ERRORS, DashboardSpec, Panel, Query, Row, Variable
from components.observability.grafana.scope import VLLM, DashboardScope
from components.observability.grafana.tunnel import NAMESPACE_VARIABLE

MODEL_VARIABLE = Variable("model", "Model", '{namespace="$namespace",job="vllm"}', "model_name")
GPU_RESOURCES = 'resource=~"nvidia_com_gpu|amd_com_gpu"'
PENDING = 'phase="Pending"'


def queue(width: int = 8) -> Panel:
    return Panel(
        "Waiting requests per pod",
        "Requests queued in each vLLM pod: it runs as many as its KV cache and `--max-num-seqs` allow.",
        (Query(f"max by (pod, model_name) (vllm:num_requests_waiting{VLLM})", "{{model_name}} {{pod}}"),),
        alert="LlmEdgeVllmQueueBuildUp", width=width,
    )


def kv_cache(width: int = 8) -> Panel:
    return Panel(
        "KV cache usage per pod",
        "Share of each pod's KV cache in use: near 100% new requests wait and running ones get preempted.",
        (Query(f"max by (pod, model_name) {promql.either('vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc', VLLM)}",
               "{{model_name}} {{pod}}"),),
        unit="percentunit", alert="LlmEdgeVllmKvCacheSaturated", width=width,
    )


def first_token(width: int = 8) -> Panel:
    return Panel(
        "Time to first token (vLLM)",
        "vLLM's own time to the first token: queueing plus prefill, without the gateway and the tunnel.",
        tuple(Query(promql.quantile(q, "vllm:time_to_first_token_seconds", VLLM, "model_name"),
                    f"p{round(q * 100)} {{{{model_name}}}}") for q in (0.5, 0.99)),
        unit="s", alert="LlmEdgeVllmSlowFirstToken", width=width,
    )


def restarts(scope: DashboardScope, width: int = 8) -> Panel:
    return Panel(
        "vLLM container restarts",
        "Restarts of the model servers (out of memory, engine crash): each costs a full model load.",
        (Query(f"sum by (pod) (increase(kube_pod_container_status_restarts_total{promql.kube(scope.pods)}[{promql.WINDOW}]))",
               "{{pod}}", ERRORS),),
        width=width,
    )


def dashboard(scope: DashboardScope) -> DashboardSpec:
    deployments = promql.kube(scope.deployments)
    return DashboardSpec(
        key="vllm",
        title=f"llm-edge / vLLM ({scope.instance})",
        description="vLLM per model: load, KV cache, latency, throughput, replicas and GPUs.",
        variables=(NAMESPACE_VARIABLE, MODEL_VARIABLE),
        rows=(
            Row("Load", (
                Panel(
                    "Running requests",
                    "Requests each model is generating for now, over all its pods.",
                    (Query(f"sum by (model_name) (vllm:num_requests_running{VLLM})", "{{model_name}}"),),
                ),
                queue(),
                kv_cache(),
                Panel(
                    "Preemptions",
                    "Requests preempted per minute: vLLM ran out of KV cache mid-generation and recomputes them.",
                    (Query(f"{promql.summed_rate('vllm:num_preemptions_total', VLLM, 'model_name')} * 60", "{{model_name}}",
                           ERRORS),),
                    alert="LlmEdgeVllmPreemptions", width=12,
                ),
                Panel(
                    "Prompt and generation throughput",
                    "Prompt tokens prefilled and tokens generated per second, per model.",
                    (Query(promql.summed_rate("vllm:prompt_tokens_total", VLLM, "model_name"), "prompt {{model_name}}"),
                     Query(promql.summed_rate("vllm:generation_tokens_total", VLLM, "model_name"), "generation {{model_name}}")),
                    width=12,
                ),
            )),
            Row("Latency", (
                first_token(),
                Panel(
                    "Inter-token latency",
                    "Time between two streamed outputs of one request: what a reader of a stream feels as speed.",
                    tuple(Query(promql.quantile(q, "vllm:inter_token_latency_seconds", VLLM, "model_name",
                                                older_name="vllm:time_per_output_token_seconds"),
                                f"p{round(q * 100)} {{{{model_name}}}}") for q in (0.5, 0.99)),
                    unit="s",
                ),
                Panel(
                    "End-to-end request latency",
                    "From arrival in vLLM to the last token, per model.",
                    (Query(promql.quantile(0.95, "vllm:e2e_request_latency_seconds", VLLM, "model_name"), "p95 {{model_name}}"),),
                    unit="s",
                ),
            )),
            Row("Replicas", (
                Panel(
                    "Ready replicas",
                    "Ready pods of each model's Deployment against the replicas it should run.",
                    (Query(f"sum by (deployment) (kube_deployment_status_replicas_ready{deployments})", "ready {{deployment}}"),
                     Query(f"sum by (deployment) (kube_deployment_spec_replicas{deployments})", "wanted {{deployment}}")),
                    alert="LlmEdgeModelNoReadyReplica",
                ),
                Panel(
                    "GPU pods pending",
                    "Pods that request GPUs and wait in Pending: no node with a free GPU accepts them, or the image "
                    "is still being pulled.",
                    (Query(f'sum by (pod) (kube_pod_status_phase{promql.kube(scope.pods, PENDING)})'
                           f" and on (pod) (sum by (pod) (kube_pod_container_resource_requests{promql.kube(GPU_RESOURCES)}) > 0)",
                           "{{pod}}", ERRORS),),
                    alert="LlmEdgeGpuPodPending",
                ),
                restarts(scope),
            )),
            Row(f"GPUs ({gpus.EXPORTERS[scope.gpu_vendor]})", gpus.panels(scope.gpu_vendor)),
        ),
    )
