"""Config of models and backends: GPU overrides per cluster, caches, one home per model name."""

from __future__ import annotations

from components.config import parse_stack_config
from tests.config.cases import errors_of, with_

MODEL = {"huggingFaceId": "Qwen/Qwen2.5-0.5B-Instruct", "image": "vllm/vllm-openai:v0.11.0"}
WITH_MODEL = with_("models", {"qwen": dict(MODEL)})


def test_unknown_gpu_vendor():
    [line] = errors_of(with_("clusters.blue.gpu.vendor", "intel", WITH_MODEL))
    assert line.startswith("llm-edge:clusters.blue.gpu.vendor:") and "'nvidia' or 'amd'" in line


def test_tensor_parallel_size_must_divide_the_gpus():
    raw = with_("models.qwen.gpusPerReplica", 4, WITH_MODEL)
    raw = with_("models.qwen.tensorParallelSize", 3, raw)
    [line] = errors_of(raw)
    assert line == "llm-edge:models.qwen.tensorParallelSize: must divide gpusPerReplica (4) (got 3)"


def test_per_cluster_override_is_checked_in_that_cluster():
    raw = with_("clusters.blue.models", {"qwen": {"gpusPerReplica": 2, "tensorParallelSize": 4}}, WITH_MODEL)
    [line] = errors_of(raw)
    assert line.startswith("llm-edge:clusters.blue.models.qwen.tensorParallelSize: must divide gpusPerReplica (2)")
    [line] = errors_of(with_("clusters.blue.models", {"llama": {"replicas": 1}}, WITH_MODEL))
    assert line.startswith("llm-edge:clusters.blue.models.llama: overrides an undeclared model")


def test_override_merges_with_the_model():
    raw = with_("clusters.blue.models", {"qwen": {"replicas": 3, "image": "rocm/vllm:rocm6.4.1_vllm_0.10.1_20250909"}}, WITH_MODEL)
    raw = with_("models.qwen.cache", {"type": "emptyDir"}, raw)
    plan = parse_stack_config("dev", raw).model_plan("qwen", "blue")
    assert (plan.replicas, plan.image, plan.gpus_per_replica) == (3, "rocm/vllm:rocm6.4.1_vllm_0.10.1_20250909", 1)


def test_one_read_write_once_cache_cannot_serve_several_replicas():
    [line] = errors_of(with_("models.qwen.replicas", 2, WITH_MODEL))
    assert line.startswith("llm-edge:models.qwen.cache.accessMode:") and "ReadWriteMany" in line


def test_backend_url_has_no_path_and_model_names_have_one_home():
    [line] = errors_of(with_("backends", {"gpustack": {"url": "http://10.0.0.9/v1", "models": ["x"]}}))
    assert line.startswith("llm-edge:backends.gpustack.url:")
    raw = with_("backends", {"gpustack": {"url": "http://10.0.0.9", "models": ["qwen"]}}, WITH_MODEL)
    [line] = errors_of(raw)
    assert line.startswith("llm-edge:models: is served by more than one")


def test_routing_is_one_of_the_gateways_and_its_load_factor_at_least_one():
    [line] = errors_of(with_("models.qwen.routing", "round_robin", WITH_MODEL))
    assert line == "llm-edge:models.qwen.routing: Input should be 'prefix_affinity' or 'least_outstanding' (got \"round_robin\")"
    [line] = errors_of(with_("models.qwen.routingLoadFactor", 0.8, WITH_MODEL))
    assert line.startswith("llm-edge:models.qwen.routingLoadFactor: Input should be greater than or equal to 1")
