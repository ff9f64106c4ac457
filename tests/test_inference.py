"""Layers 2-3: vLLM on both GPU vendors, per-cluster overrides, backends, routes, NetworkPolicies."""

from __future__ import annotations

import pytest

from tests.conftest import stack_run
from tests.helpers import DNS_RECORD, ingress_rules, objects, plain, pod_spec


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
    ("green", "amd.com/gpu", "amd.com/gpu.product-name", "AMD_Instinct_MI300X"),
])
def test_gpu_pods_tolerate_their_vendor_and_select_the_product(prod, cluster, vendor_taint, label, product):
    spec = pod_spec(prod, "vllm-llama-3-1-8b", cluster)
    assert [t["key"] for t in spec["tolerations"]] == [vendor_taint]
    [term] = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [{"key": label, "operator": "In", "values": [product]}]
    if cluster == "green":
        assert spec["nodeSelector"] == {"node.kubernetes.io/instance-type": "mi300x"}


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
    assert all("value" not in e or e["name"] == "HF_HOME" for e in env.values())


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
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts == {"cache": "/cache", "shm": "/dev/shm"}
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


def test_external_backend_and_hostname_route_become_tunnel_rules_and_dns(prod):
    for cluster in ("blue", "green"):
        rules = ingress_rules(prod, f"tunnel-{cluster}")
        hostnames = [r.get("hostname") for r in rules]
        assert hostnames == [f"{cluster}.llm.example.com", "llm.example.com", "llama-8b.example.com", None]
        assert rules[2]["service"] == "http://vllm-llama-3-1-8b.llm-edge.svc.cluster.local:8000"
        assert rules[-1] == {"service": "http_status:404"}
    records = {plain(r)["name"]: plain(r) for r in prod.of_type(DNS_RECORD)}
    assert records["llama-8b.example.com"]["proxied"] is True
    assert records["llama-8b.example.com"]["content"] == f"{prod.outputs['tunnels']['blue']}.cfargotunnel.com"


def policies(run, cluster):
    return {o["metadata"]["name"]: o["spec"] for o in objects(run, cluster, "NetworkPolicy")}


def test_network_policies_allow_only_each_hop_of_the_request_path(prod):
    specs = policies(prod, "blue")
    assert specs["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    connector = {"app.kubernetes.io/name": "cloudflared", "app.kubernetes.io/instance": "prod-blue"}
    gateway = {"app.kubernetes.io/name": "gateway", "app.kubernetes.io/instance": "prod-blue"}
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}

    def sources(name):
        [rule] = specs[name]["ingress"]
        return rule["from"], rule["ports"]

    peers, ports = sources("allow-to-gateway")
    assert peers == [{"podSelector": {"matchLabels": connector}}] and ports == [{"port": 8080, "protocol": "TCP"}]
    peers, ports = sources("allow-metrics-to-gateway")
    assert peers == [monitoring] and ports == [{"port": 9090, "protocol": "TCP"}]
    # The 72b model has no hostname route: only the gateway reaches it.
    peers, ports = sources("allow-to-vllm-qwen-2-5-72b")
    assert peers == [{"podSelector": {"matchLabels": gateway}}, monitoring] and ports == [{"port": 8000, "protocol": "TCP"}]
    # The 8b model is published by a hostname route: the connector reaches it too.
    peers, _ = sources("allow-to-vllm-llama-3-1-8b")
    assert {"podSelector": {"matchLabels": connector}} in peers
    peers, ports = sources("allow-metrics-to-cloudflared")
    assert peers == [monitoring] and ports == [{"port": 2000, "protocol": "TCP"}]


def test_without_a_gateway_the_connector_reaches_vllm(dev):
    run = stack_run("dev", {"gateway": {"enabled": False}, "tunnel": {"originService": "http://vllm-qwen-0-5b.{namespace}.svc:8000"}})
    specs = policies(run, "dev")
    [rule] = specs["allow-to-vllm-qwen-0-5b"]["ingress"]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "cloudflared", "app.kubernetes.io/instance": "dev-dev"}}} in rule["from"]
    assert "allow-to-gateway" not in specs
    assert ingress_rules(run, "tunnel-dev")[0]["service"] == "http://vllm-qwen-0-5b.llm-edge.svc:8000"
