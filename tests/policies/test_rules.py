"""Each policy rule with a resource that passes and one that fails."""

from __future__ import annotations

import pytest

from policies.pack import POLICIES
from tests.policies.cases import DEPLOYMENT, budget, container, deployment, stack_violations, violations

SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
TUNNEL_CONFIG = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
ZONE_SETTING = "cloudflare:index/zoneSetting:ZoneSetting"
AWS_SECRET = "aws:secretsmanager/secret:Secret"
NAMESPACE = "kubernetes:core/v1:Namespace"
INFERENCE = {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/component": "inference"}
GPU = {"requests": {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"}, "limits": {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "1"}}


def test_policy_names_are_unique():
    names = [p.name for p in POLICIES]
    assert len(names) == len(set(names)) and len(names) >= 14


@pytest.mark.parametrize("service_type", ["LoadBalancer", "NodePort"])
def test_no_public_entry_rejects_exposing_services(service_type):
    bad = {"kind": "Service", "metadata": {"name": "gw", "namespace": "llm-edge"}, "spec": {"type": service_type}}
    [message] = violations("no-public-entry", SERVICE, bad)
    assert service_type in message and "llm-edge/gw" in message
    good = {"kind": "Service", "metadata": {"name": "gw"}, "spec": {"type": "ClusterIP"}}
    assert violations("no-public-entry", SERVICE, good) == []


def test_no_public_entry_allows_only_internal_ingress_classes():
    ingress = {"kind": "Ingress", "metadata": {"name": "web"}, "spec": {"ingressClassName": "nginx"}}
    [message] = violations("no-public-entry", INGRESS, ingress)
    assert "'nginx'" in message
    assert violations("no-public-entry", INGRESS, ingress, internalIngressClasses=["nginx"]) == []


def test_no_public_entry_rejects_external_ips_and_the_nodes_own_ports():
    exposed = {"kind": "Service", "metadata": {"name": "gw", "namespace": "llm-edge"},
               "spec": {"type": "ClusterIP", "externalIPs": ["203.0.113.7"]}}
    [message] = violations("no-public-entry", SERVICE, exposed)
    assert "externalIPs" in message and "llm-edge/gw" in message
    [message] = violations("no-public-entry", DEPLOYMENT, deployment([container()], hostNetwork=True))
    assert "hostNetwork" in message
    mapped = container(ports=[{"containerPort": 8080, "hostPort": 80}])
    [message] = violations("no-public-entry", DEPLOYMENT, deployment([mapped]))
    assert "hostPort 80" in message and "'app'" in message
    plain = container(ports=[{"containerPort": 8080}])
    assert violations("no-public-entry", DEPLOYMENT, deployment([plain], hostNetwork=False)) == []


def test_requests_and_limits():
    assert violations("requests-and-limits", DEPLOYMENT, deployment([container()])) == []
    unbounded = container(resources={"requests": {"cpu": "1"}})
    messages = violations("requests-and-limits", DEPLOYMENT, deployment([unbounded]))
    assert any("no requests for memory" in m for m in messages) and any("no limits for cpu, memory" in m for m in messages)


@pytest.mark.parametrize("image", ["nginx", "nginx:latest", "ghcr.io/x/app:latest", "Bad/Upper:1"])
def test_pinned_images_rejects(image):
    [message] = violations("pinned-images", DEPLOYMENT, deployment([container(image=image)]))
    assert repr(image) in message


@pytest.mark.parametrize("image", ["nginx:1.27", "registry:5000/x/app:v2", "x/app@sha256:" + "a" * 64])
def test_pinned_images_accepts(image):
    assert violations("pinned-images", DEPLOYMENT, deployment([container(image=image)])) == []


@pytest.mark.parametrize("image,warned", [
    ("vllm/vllm-openai:v0.11.0", True),
    ("vllm/vllm-openai:v0.11.0@sha256:" + "c" * 64, False),
    ("vllm/vllm-openai@sha256:" + "c" * 64, False),
    ("registry:5000/x/app@sha256:" + "d" * 64, False),
])
def test_tag_only_images_are_warned_about_and_digests_pass(image, warned):
    found = violations("images-pinned-by-digest", DEPLOYMENT, deployment([container(image=image)]))
    assert len(found) == warned and all("pinned by tag only" in message for message in found)


def test_the_digest_rule_warns_in_prod_and_is_off_elsewhere():
    import json

    from policies import runner

    levels = {stack: runner.settings(POLICIES, json.loads((runner.CONFIG_DIR / f"{stack}.json").read_text()))
              ["images-pinned-by-digest"].level.value for stack in ("prod", "dev", "preview")}
    assert levels == {"prod": "advisory", "dev": "disabled", "preview": "disabled"}


def test_pinned_images_checks_init_containers_and_cron_jobs():
    cron = {"kind": "CronJob", "metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "initContainers": [container(image="busybox")], "containers": [container()]}}}}}}
    assert len(violations("pinned-images", "kubernetes:batch/v1:CronJob", cron)) == 1


def test_cloudflared_needs_no_autoupdate():
    image = "cloudflare/cloudflared:2025.11.1"
    good = deployment([container(image=image, args=["tunnel", "--no-autoupdate", "run"])])
    bad = deployment([container(image=image, args=["tunnel", "run"])])
    assert violations("cloudflared-no-autoupdate", DEPLOYMENT, good) == []
    assert len(violations("cloudflared-no-autoupdate", DEPLOYMENT, bad)) == 1


def test_gpu_pods_request_gpus_and_tolerate_the_vendor_taint():
    tolerated = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    good = deployment([container(resources=GPU)], labels=INFERENCE, tolerations=tolerated)
    assert violations("gpu-scheduling", DEPLOYMENT, good) == []
    wrong_vendor = deployment([container(resources=GPU)], labels=INFERENCE, tolerations=[{"key": "amd.com/gpu", "operator": "Exists"}])
    [message] = violations("gpu-scheduling", DEPLOYMENT, wrong_vendor)
    assert "does not tolerate the taints of any GPU node pool (nvidia.com/gpu:NoSchedule)" in message
    no_gpu = deployment([container()], labels=INFERENCE)
    [message] = violations("gpu-scheduling", DEPLOYMENT, no_gpu)
    assert "requests no GPU" in message


def test_gpu_tolerations_match_a_pools_taints_as_the_scheduler_does():
    aks = [[{"key": "sku", "value": "gpu", "effect": "NoSchedule"}]]
    tolerates_aks = [{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    pod = deployment([container(resources=GPU)], labels=INFERENCE, tolerations=tolerates_aks)
    assert violations("gpu-scheduling", DEPLOYMENT, pod, gpuNodeTaints=aks) == []
    [message] = violations("gpu-scheduling", DEPLOYMENT, pod)  # only the usual nvidia.com/gpu:NoSchedule
    assert "does not tolerate the taints of any GPU node pool (nvidia.com/gpu:NoSchedule)" in message
    # Right key, but a value or an effect the taint does not have: it tolerates nothing.
    for wrong in ({"key": "sku", "operator": "Equal", "value": "cpu", "effect": "NoSchedule"},
                  {"key": "sku", "operator": "Exists", "effect": "NoExecute"}):
        pod = deployment([container(resources=GPU)], labels=INFERENCE, tolerations=[wrong])
        [message] = violations("gpu-scheduling", DEPLOYMENT, pod, gpuNodeTaints=aks)
        assert "(nvidia.com/gpu:NoSchedule or sku=gpu:NoSchedule)" in message
    # A pool of two taints needs both tolerated.
    two = [[{"key": "sku", "value": "gpu", "effect": "NoSchedule"}, {"key": "dedicated", "effect": "NoExecute"}]]
    assert len(violations("gpu-scheduling", DEPLOYMENT, deployment([container(resources=GPU)], labels=INFERENCE,
                                                                   tolerations=tolerates_aks), gpuNodeTaints=two)) == 1
    # The usual taint has any value: Exists tolerates it, an Equal naming some value may not.
    equal = [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "nope", "effect": "NoExecute"}]
    assert len(violations("gpu-scheduling", DEPLOYMENT, deployment([container(resources=GPU)], labels=INFERENCE,
                                                                   tolerations=equal))) == 1
    everything = deployment([container(resources=GPU)], labels=INFERENCE, tolerations=[{"operator": "Exists"}])
    assert violations("gpu-scheduling", DEPLOYMENT, everything, gpuNodeTaints=aks) == []


def test_pods_that_are_not_gpu_workloads_request_none():
    tolerated = [{"operator": "Exists"}]
    sneaky = deployment([container(resources=GPU)], labels={"app.kubernetes.io/name": "gateway"}, tolerations=tolerated)
    [message] = violations("gpu-scheduling", DEPLOYMENT, sneaky)
    assert "is not a GPU workload" in message
    assert violations("gpu-scheduling", DEPLOYMENT, deployment([container()])) == []


def tunnel_config(ingresses, origin_request=None):
    return {"config": {"ingresses": ingresses, "originRequest": origin_request or {}}}


def test_tunnel_config_ends_with_a_catch_all():
    rule = {"hostname": "llm.example.com", "service": "http://gw:8080"}
    assert violations("tunnel-catch-all", TUNNEL_CONFIG, tunnel_config([rule, {"service": "http_status:404"}])) == []
    assert len(violations("tunnel-catch-all", TUNNEL_CONFIG, tunnel_config([rule]))) == 1
    assert len(violations("tunnel-catch-all", TUNNEL_CONFIG, tunnel_config([]))) == 1


def test_tunnel_config_never_skips_origin_tls_verification():
    rules = [{"hostname": "a.example.com", "service": "https://x", "originRequest": {"noTlsVerify": True}}, {"service": "http_status:404"}]
    [message] = violations("tunnel-origin-tls", TUNNEL_CONFIG, tunnel_config(rules))
    assert "ingress a.example.com" in message
    assert len(violations("tunnel-origin-tls", TUNNEL_CONFIG, tunnel_config([{"service": "http_status:404"}], {"noTlsVerify": True}))) == 1
    assert violations("tunnel-origin-tls", TUNNEL_CONFIG, tunnel_config([{"service": "http_status:404"}], {"noTlsVerify": False})) == []


def test_dns_records_pointing_at_a_tunnel_are_proxied():
    record = {"name": "llm.example.com", "type": "CNAME", "content": "abc.cfargotunnel.com", "proxied": True}
    assert violations("tunnel-dns-proxied", DNS_RECORD, record) == []
    [message] = violations("tunnel-dns-proxied", DNS_RECORD, {**record, "proxied": False})
    assert "llm.example.com" in message
    other = {"name": "www.example.com", "type": "CNAME", "content": "example.github.io", "proxied": False}
    assert violations("tunnel-dns-proxied", DNS_RECORD, other) == []


def zone_settings(**values):
    return [(ZONE_SETTING, {"zoneId": "z", "settingId": k, "value": v}) for k, v in values.items()]


def test_zone_tls_settings_when_the_zone_is_owned():
    strict = zone_settings(ssl="strict", always_use_https="on", min_tls_version="1.2")
    assert stack_violations("zone-tls-settings", strict) == []
    assert stack_violations("zone-tls-settings", []) == []  # not the zone owner
    weak = zone_settings(ssl="flexible", always_use_https="on", min_tls_version="1.0")
    messages = stack_violations("zone-tls-settings", weak)
    assert len(messages) == 2 and any("ssl is 'flexible'" in m for m in messages)
    [missing] = stack_violations("zone-tls-settings", zone_settings(ssl="strict", always_use_https="on"))
    assert "min_tls_version" in missing


def test_secrets_keep_a_recovery_window():
    assert violations("secrets-recovery-window", AWS_SECRET, {"name": "s", "recoveryWindowInDays": 7}) == []
    assert violations("secrets-recovery-window", AWS_SECRET, {"name": "s"}) == []  # AWS default: 30
    [message] = violations("secrets-recovery-window", AWS_SECRET, {"name": "s", "recoveryWindowInDays": 0})
    assert "0 days" in message and "at least 7" in message
    assert violations("secrets-recovery-window", AWS_SECRET, {"name": "s", "recoveryWindowInDays": 0}, minimumDays=0) == []


def test_credentials_reach_workloads_only_from_secrets():
    from_secret = {"name": "TUNNEL_TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "token"}}}
    good = deployment([container(env=[from_secret, {"name": "HF_HOME", "value": "/cache"}, {"name": "KEYS_FILE", "value": "/k"}])])
    assert violations("credentials-in-secrets", DEPLOYMENT, good) == []
    literal = deployment([container(env=[{"name": "VLLM_API_KEY", "value": "sk-123"}])])
    [message] = violations("credentials-in-secrets", DEPLOYMENT, literal)
    assert "VLLM_API_KEY" in message
    flag = deployment([container(args=["tunnel", "run", "--token", "eyJ..."])])
    assert len(violations("credentials-in-secrets", DEPLOYMENT, flag)) == 1
    config_map = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"tunnel-token": "x", "config.yaml": "a: 1"}}
    [message] = violations("credentials-in-secrets", CONFIG_MAP, config_map)
    assert "'tunnel-token'" in message


def test_prod_availability_needs_replicas_and_a_budget():
    labels = {"app.kubernetes.io/name": "gateway", "app.kubernetes.io/instance": "prod-blue"}
    gateway = deployment([container()], labels=labels, name="gateway")
    assert stack_violations("prod-availability", [(DEPLOYMENT, gateway), (PDB, budget(labels))]) == []
    [message] = stack_violations("prod-availability", [(DEPLOYMENT, gateway)])
    assert "no PodDisruptionBudget" in message
    single = deployment([container()], labels=labels, name="gateway", replicas=1)
    [message] = stack_violations("prod-availability", [(DEPLOYMENT, single), (PDB, budget(labels))])
    assert "runs 1 replica(s)" in message
    other_namespace = budget(labels, namespace="elsewhere")
    assert len(stack_violations("prod-availability", [(DEPLOYMENT, gateway), (PDB, other_namespace)])) == 1


def test_prod_availability_reads_the_autoscaler_floor():
    labels = {"app.kubernetes.io/name": "gateway"}
    gateway = deployment([container()], labels=labels, name="gateway", replicas=None)
    hpa = {"metadata": {"name": "gateway", "namespace": "llm-edge"},
           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "gateway"}, "minReplicas": 3}}
    pdb = (PDB, budget(labels))
    assert stack_violations("prod-availability", [(DEPLOYMENT, gateway), (HPA, hpa), pdb]) == []
    assert len(stack_violations("prod-availability", [(DEPLOYMENT, gateway), pdb])) == 1


def test_no_wildcard_cors_in_the_gateway_config():
    def gateway_config(origins):
        return {"kind": "ConfigMap", "metadata": {"name": "gateway", "labels": {"app.kubernetes.io/name": "gateway"}},
                "data": {"config.yaml": f"listen: 0.0.0.0:8080\ncors_origins: {origins}\n"}}
    assert violations("no-wildcard-cors", CONFIG_MAP, gateway_config('["https://app.example.com"]')) == []
    [message] = violations("no-wildcard-cors", CONFIG_MAP, gateway_config('["*"]'))
    assert "any origin" in message
    access_app = {"name": "api", "corsHeaders": {"allowAllOrigins": True}}
    assert len(violations("no-wildcard-cors", "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication", access_app)) == 1


def test_preview_stacks_own_no_zone_resources_and_no_gpus():
    disposable = (NAMESPACE, {"metadata": {"name": "llm-edge-pr-7", "labels": {"llm-edge.dev/disposable": "true"}}})
    gateway = (DEPLOYMENT, deployment([container()]))
    assert stack_violations("preview-disposable", [disposable, gateway]) == []
    gpu_pod = (DEPLOYMENT, deployment([container(resources=GPU)], labels=INFERENCE))
    ruleset = ("cloudflare:index/ruleset:Ruleset", {"phase": "http_ratelimit"})
    certificate = ("cloudflare:index/certificatePack:CertificatePack", {"hosts": ["example.com", "*.preview.example.com"]})
    messages = stack_violations("preview-disposable", [disposable, gpu_pod, ruleset, certificate, *zone_settings(ssl="strict")])
    assert len(messages) == 4 and any("requests GPUs" in m for m in messages)
    assert any("CertificatePack" in m for m in messages)
    # Not a preview: the same resources are the zone owner's business.
    assert stack_violations("preview-disposable", [gpu_pod, ruleset]) == []
    assert len(stack_violations("preview-disposable", [gpu_pod, ruleset], previewStack=True)) == 2
