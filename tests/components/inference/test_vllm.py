"""vLLM in each cluster: GPUs of the cluster's vendor, per-cluster overrides, probes, volumes, keys."""

from __future__ import annotations

import pytest

from tests.conftest import stack_run
from tests.helpers import objects, pod_spec


@pytest.fixture(scope="module")
def prod():
    return stack_run("prod")


def container(run, name, cluster):
    [found] = pod_spec(run, name, cluster)["containers"]
    return found


def arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


@pytest.mark.parametrize(
    "cluster,resource,count,image",
    [
        ("blue", "nvidia.com/gpu", "4", "vllm/vllm-openai:v0.11.0"),
        ("green", "amd.com/gpu", "2", "rocm/vllm:rocm6.4.1_vllm_0.10.1_20250909"),
    ],
)
def test_gpu_resource_count_and_image_follow_the_clusters_vendor(prod, cluster, resource, count, image):
    vllm = container(prod, "vllm-qwen-2-5-72b", cluster)
    assert vllm["image"] == image
    assert vllm["resources"]["limits"][resource] == count
    assert vllm["resources"]["requests"][resource] == count
    other = {"nvidia.com/gpu", "amd.com/gpu"} - {resource}
    assert not other & set(vllm["resources"]["limits"])
    assert arg(vllm["args"], "--tensor-parallel-size") == count


@pytest.mark.parametrize("cluster,vendor_taint,label,product", [
    ("blue", "nvidia.com/gpu", "nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"),
    ("green", "amd.com/gpu", "amd.com/gpu.product-name", "AMD_Instinct_MI300X_OAM"),
])
def test_gpu_pods_tolerate_their_vendor_and_select_the_product(prod, cluster, vendor_taint, label, product):
    spec = pod_spec(prod, "vllm-llama-3-1-8b", cluster)
    assert [t["key"] for t in spec["tolerations"]] == [vendor_taint]
    [term] = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [{"key": label, "operator": "In", "values": [product]}]
    if cluster == "green":
        assert spec["nodeSelector"] == {"node.kubernetes.io/instance-type": "Standard_ND96isr_MI300X_v5"}


def test_per_cluster_replicas_override(prod):
    replicas = {
        (cluster, o["metadata"]["name"]): o["spec"]["replicas"]
        for cluster in ("blue", "green")
        for o in objects(prod, cluster, "Deployment")
        if o["metadata"]["name"].startswith("vllm-")
    }
    assert replicas == {
        ("blue", "vllm-llama-3-1-8b"): 2,
        ("blue", "vllm-qwen-2-5-72b"): 1,
        ("green", "vllm-llama-3-1-8b"): 1,
        ("green", "vllm-qwen-2-5-72b"): 1,
    }


def test_vllm_command_line(prod):
    args = container(prod, "vllm-llama-3-1-8b", "blue")["args"]
    assert arg(args, "--model") == "meta-llama/Llama-3.1-8B-Instruct"
    assert arg(args, "--served-model-name") == "llama-3.1-8b-instruct"
    assert arg(args, "--max-model-len") == "32768"
    assert arg(args, "--gpu-memory-utilization") == "0.9"
    assert arg(args, "--port") == "8000"
    assert container(prod, "vllm-qwen-2-5-72b", "blue")["args"][-1] == "--enable-prefix-caching"


def test_keys_come_from_secrets(prod):
    env = {e["name"]: e for e in container(prod, "vllm-llama-3-1-8b", "blue")["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "vllm-api-key", "key": "api-key"}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hugging-face-token", "key": "token"}
    # Literal values are settings, never keys.
    assert all("value" not in e or e["name"] in ("HF_HOME", "HOME", "USER", "VLLM_HTTP_TIMEOUT_KEEP_ALIVE") for e in env.values())


def test_probes_allow_a_long_model_load_and_do_not_kill_a_busy_server(prod):
    vllm = container(prod, "vllm-qwen-2-5-72b", "blue")
    startup = vllm["startupProbe"]
    assert startup["httpGet"]["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60 * 60  # this model's budget: 60 minutes
    small = container(prod, "vllm-llama-3-1-8b", "blue")["startupProbe"]
    assert small["periodSeconds"] * small["failureThreshold"] >= 30 * 60
    for probe in ("readinessProbe", "livenessProbe"):
        assert vllm[probe]["httpGet"]["path"] == "/health"
    liveness = vllm["livenessProbe"]
    assert liveness["timeoutSeconds"] >= 10 and liveness["periodSeconds"] * liveness["failureThreshold"] >= 120


def test_volumes_cache_and_shared_memory(prod, dev):
    spec = pod_spec(prod, "vllm-qwen-2-5-72b", "blue")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    assert volumes["cache"]["persistentVolumeClaim"]["claimName"] == "vllm-qwen-2-5-72b-cache"
    [claim] = [o for o in objects(prod, "blue", "PersistentVolumeClaim") if o["metadata"]["name"] == "vllm-qwen-2-5-72b-cache"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "efs-models"
    assert claim["spec"]["resources"]["requests"]["storage"] == "200Gi"
    # A cluster on another cloud names its own class (clusters.green.cacheStorageClass).
    [green_claim] = [o for o in objects(prod, "green", "PersistentVolumeClaim") if o["metadata"]["name"] == "vllm-qwen-2-5-72b-cache"]
    assert green_claim["spec"]["storageClassName"] == "azurefile-csi-premium"
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts == {"cache": "/cache", "shm": "/dev/shm", "tmp": "/tmp", "home": "/home/vllm"}
    dev_volumes = {v["name"]: v for v in pod_spec(dev, "vllm-qwen-0-5b", "dev")["volumes"]}
    assert dev_volumes["cache"]["emptyDir"] == {"sizeLimit": "20Gi"}
    assert objects(dev, "dev", "PersistentVolumeClaim") == []


def test_rollout_needs_no_spare_gpu_and_has_a_budget_and_a_service(prod):
    [deployment] = [o for o in objects(prod, "blue", "Deployment") if o["metadata"]["name"] == "vllm-llama-3-1-8b"]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["llm-edge.dev/model"] == "llama-3-1-8b" and pod_labels["app.kubernetes.io/name"] == "vllm"
    [service] = [o for o in objects(prod, "blue", "Service") if o["metadata"]["name"] == "vllm-llama-3-1-8b"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http"}]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    [budget] = [o for o in objects(prod, "blue", "PodDisruptionBudget") if o["metadata"]["name"] == "vllm-llama-3-1-8b"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    other = [o for o in objects(prod, "blue", "Deployment") if o["metadata"]["name"] == "vllm-qwen-2-5-72b"][0]
    assert not budget["spec"]["selector"]["matchLabels"].items() <= other["spec"]["template"]["metadata"]["labels"].items()


def test_every_container_has_requests_and_limits_and_no_privilege_escalation(prod):
    for cluster in ("blue", "green"):
        for deployment in objects(prod, cluster, "Deployment"):
            for c in deployment["spec"]["template"]["spec"]["containers"]:
                assert {"cpu", "memory"} <= set(c["resources"]["requests"]) & set(c["resources"]["limits"]), c["name"]
                assert c["securityContext"]["allowPrivilegeEscalation"] is False
                assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_amd_tensor_parallel_pods_share_memory_inside_pod_security_baseline(prod):
    # AMD's vLLM example uses hostIPC, hostNetwork, seccomp Unconfined and SYS_PTRACE, which need the
    # privileged Pod Security level; tensor parallelism needs shared memory between the ranks, which a
    # memory-backed /dev/shm gives inside baseline (docs/deploying.md#amd-gpus).
    spec = pod_spec(prod, "vllm-qwen-2-5-72b", "green")
    [vllm] = spec["containers"]
    assert "--tensor-parallel-size" in vllm["args"] and vllm["args"][vllm["args"].index("--tensor-parallel-size") + 1] == "2"
    assert not any(spec.get(field) for field in ("hostIPC", "hostNetwork", "hostPID"))
    assert vllm["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert vllm["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    shm = {v["name"]: v for v in spec["volumes"]}["shm"]["emptyDir"]
    assert shm["medium"] == "Memory"
    assert {"name": "shm", "mountPath": "/dev/shm"} in vllm["volumeMounts"]
    [namespace] = objects(prod, "green", "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


def test_nvidia_vllm_runs_as_a_non_root_uid_with_a_read_only_root_and_its_writes_on_volumes(prod):
    # vLLM 0.32 as uid 10001 without a passwd entry writes only to a temp dir, HOME's caches and
    # /dev/shm (measured; docs/deploying.md#vllm-as-non-root).
    spec = pod_spec(prod, "vllm-llama-3-1-8b", "blue")
    [vllm] = spec["containers"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["fsGroup"] == 10001
    assert vllm["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in vllm["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert {"/tmp", "/home/vllm", "/cache", "/dev/shm"} <= set(mounts)
    assert "emptyDir" in volumes[mounts["/tmp"]] and "emptyDir" in volumes[mounts["/home/vllm"]]
    env = {e["name"]: e.get("value") for e in vllm["env"]}
    assert env["HOME"] == "/home/vllm" and env["HF_HOME"].startswith("/cache/")


def test_rocm_vllm_keeps_root_for_the_gpu_device_groups(prod):
    spec = pod_spec(prod, "vllm-llama-3-1-8b", "green")
    [vllm] = spec["containers"]
    assert "securityContext" not in spec and "runAsNonRoot" not in vllm["securityContext"]
    assert vllm["securityContext"]["allowPrivilegeEscalation"] is False
