"""VllmServer: one model served by vLLM's OpenAI-compatible server in one cluster.

A Deployment on GPU nodes of the cluster's vendor, a headless Service `vllm-<model>` (the gateway
resolves it to every ready pod and balances across them itself), a model cache volume and a
PodDisruptionBudget. The rollout replaces pods one at a time and never needs a spare GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.config import GpuSettings, ModelPlan
from components.config.inference import model_service_name
from components.kube import (
    SecretKey,
    disruption_budget,
    hardened_container_security,
    http_probe,
    non_root_pod_security,
    object_labels,
    pod_metadata,
    resource_requirements,
    rolling_deployment_spec,
    secret_env,
    selector_labels,
    tolerations,
)

APP = "vllm"
PORT = 8000
MODEL_LABEL = "llm-edge.dev/model"
CACHE_PATH = "/cache"
HOME_PATH = "/home/vllm"
# Any uid: the official images have no user of their own and vLLM needs no passwd entry.
VLLM_UID = 10001
# Vendors whose pods run vLLM as VLLM_UID with a read-only root filesystem (AMD: see below).
NON_ROOT_VENDORS = ("nvidia",)
PROBE_PERIOD_SECONDS = 10
# Per pod, on top of the startup budget: scheduling and pulling a vLLM image of ~10 GB happen
# before the startup probe starts counting.
POD_START_MINUTES = 15


def await_timeouts(plan: ModelPlan) -> pulumi.CustomTimeouts:
    """How long `pulumi up` waits for the Deployment to be ready.

    pulumi-kubernetes waits 10 minutes by default, and a resource option overrides it
    (https://www.pulumi.com/registry/packages/kubernetes/api-docs/apps/v1/deployment/: "You can
    override the default timeout value by setting the 'customTimeouts' option"). A model load takes
    up to its startup budget; a create starts every pod at once, while an update replaces them one at
    a time (maxSurge 0), so it may take that long once per replica.
    """
    per_pod = plan.model.startup_budget_minutes + POD_START_MINUTES
    return pulumi.CustomTimeouts(create=f"{per_pod}m", update=f"{per_pod * max(plan.replicas, 1)}m")


@dataclass(frozen=True)
class VllmServerArgs:
    namespace: pulumi.Input[str]
    instance: str
    plan: ModelPlan
    gpu: GpuSettings
    api_key: SecretKey
    hugging_face_token: SecretKey | None
    depends_on: list[pulumi.Resource]
    # How long the tunnel keeps an idle connection to its origins (originRequest.keepAliveTimeout).
    tunnel_keep_alive_seconds: int = 90
    secrets_version: pulumi.Input[str] | None = None


def origin_keep_alive_seconds(proxy_keep_alive_seconds: int) -> int:
    """An origin's idle timeout that outlasts the proxy's: the proxy always closes first."""
    return proxy_keep_alive_seconds + 30


def service_name(model_name: str) -> str:
    return model_service_name(model_name)


def service_url(model_name: str, namespace: str) -> str:
    return f"http://{service_name(model_name)}.{namespace}.svc.cluster.local:{PORT}"


def pod_labels(instance: str, model_name: str) -> dict[str, str]:
    return object_labels(APP, instance, "inference", {MODEL_LABEL: model_name})


class VllmServer(pulumi.ComponentResource):
    service_name: str
    served_name: str
    selector: dict[str, str]

    def __init__(self, name: str, args: VllmServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:inference:VllmServer", name, None, opts)
        plan, gpu, model = args.plan, args.gpu, args.plan.model
        self.service_name = service_name(plan.name)
        self.served_name = plan.served_name
        self.selector = {**selector_labels(APP, args.instance), MODEL_LABEL: plan.name}
        labels = pod_labels(args.instance, plan.name)

        def metadata(object_name: str) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=args.namespace, labels=labels)

        non_root = gpu.vendor in NON_ROOT_VENDORS
        volumes = self._cache_volumes(name, plan, metadata)
        volumes.append(
            k8s.core.v1.VolumeArgs(
                name="shm", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(medium="Memory", size_limit=model.shm_size)
            )
        )
        mounts = [
            k8s.core.v1.VolumeMountArgs(name="cache", mount_path=CACHE_PATH),
            k8s.core.v1.VolumeMountArgs(name="shm", mount_path="/dev/shm"),
        ]
        env = []
        if non_root:
            # With a read-only root filesystem every path vLLM writes needs a volume: temp files (ZMQ
            # sockets, the torch.distributed init file) and the caches that follow HOME (vLLM's
            # torch.compile cache, Triton, FlashInfer, CUDA's). Measured with vLLM 0.32 as an
            # arbitrary uid without a passwd entry: nothing else is written (docs/deploying.md).
            for volume, path in (("tmp", "/tmp"), ("home", HOME_PATH)):
                volumes.append(k8s.core.v1.VolumeArgs(name=volume, empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()))
                mounts.append(k8s.core.v1.VolumeMountArgs(name=volume, mount_path=path))
            env += [k8s.core.v1.EnvVarArgs(name="HOME", value=HOME_PATH),
                    # getpass.getuser() looks here before the passwd database, which has no entry for the uid.
                    k8s.core.v1.EnvVarArgs(name="USER", value=APP)]
        env += [
            secret_env("VLLM_API_KEY", args.api_key),
            k8s.core.v1.EnvVarArgs(name="HF_HOME", value=f"{CACHE_PATH}/huggingface"),
            # uvicorn closes idle connections after VLLM_HTTP_TIMEOUT_KEEP_ALIVE, 5 s by default
            # (https://docs.vllm.ai/en/latest/configuration/env_vars.html), while cloudflared reuses
            # them for 90 s (originRequest keepAliveTimeout): a hostname route straight to vLLM
            # would send requests on connections vLLM is closing, and clients get 502s. The
            # server must hold them longer than the proxy in front.
            k8s.core.v1.EnvVarArgs(
                name="VLLM_HTTP_TIMEOUT_KEEP_ALIVE", value=str(origin_keep_alive_seconds(args.tunnel_keep_alive_seconds))
            ),
        ]
        if args.hugging_face_token:
            env.append(secret_env("HF_TOKEN", args.hugging_face_token))
        startup_failures = model.startup_budget_minutes * 60 // PROBE_PERIOD_SECONDS
        container = k8s.core.v1.ContainerArgs(
            name=APP,
            image=plan.image,
            command=["python3", "-m", "vllm.entrypoints.openai.api_server"],
            args=[
                "--model", model.hugging_face_id,
                "--served-model-name", plan.served_name,
                "--tensor-parallel-size", str(plan.tensor_parallel_size),
                "--max-model-len", str(model.max_model_len),
                "--gpu-memory-utilization", str(model.gpu_memory_utilization),
                "--host", "0.0.0.0",
                "--port", str(PORT),
                *model.extra_args,
            ],
            env=env,
            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=PORT)],
            # Download and load can take long; nothing else probes until this has passed once.
            startup_probe=http_probe("/health", "http", PROBE_PERIOD_SECONDS, startup_failures, 5),
            readiness_probe=http_probe("/health", "http", PROBE_PERIOD_SECONDS, 3, 5),
            # A server busy generating may answer /health slowly: only a long silence restarts it.
            liveness_probe=http_probe("/health", "http", 30, 6, 20),
            resources=resource_requirements(model.resources, {gpu.resource_name: str(plan.gpus_per_replica)}),
            volume_mounts=mounts,
            security_context=(
                hardened_container_security()
                if non_root
                # ROCm: /dev/kfd and /dev/dri belong to the node's render and video groups, whose ids
                # differ between node images (AMD's docs run containers with --group-add=video), so a
                # non-root process may not open them; everything but the user is still dropped.
                else k8s.core.v1.SecurityContextArgs(
                    allow_privilege_escalation=False,
                    capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                    seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                )
            ),
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            k8s.apps.v1.DeploymentInitArgs(
                metadata=metadata(self.service_name),
                spec=rolling_deployment_spec(
                    replicas=plan.replicas,
                    selector=self.selector,
                    # GPUs are scarce: stop one old pod before starting its replacement.
                    max_surge=0,
                    max_unavailable=1,
                    pod_metadata=pod_metadata(labels, args.secrets_version),
                    pod_spec=k8s.core.v1.PodSpecArgs(
                        containers=[container],
                        volumes=volumes,
                        automount_service_account_token=False,
                        # fsGroup makes the cache and emptyDir volumes writable for the uid.
                        security_context=non_root_pod_security(VLLM_UID) if non_root else None,
                        tolerations=tolerations(gpu.tolerated_taints),
                        node_selector=gpu.node_selector or None,
                        affinity=_product_affinity(gpu),
                        # Lets in-flight generations finish after the endpoint is removed.
                        termination_grace_period_seconds=120,
                    ),
                ),
            ),
            pulumi.ResourceOptions(parent=self, depends_on=args.depends_on, custom_timeouts=await_timeouts(plan)),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            k8s.core.v1.ServiceInitArgs(
                metadata=metadata(self.service_name),
                spec=k8s.core.v1.ServiceSpecArgs(
                    # Headless: DNS returns every ready pod, and the gateway balances by outstanding requests.
                    cluster_ip="None",
                    selector=self.selector,
                    ports=[k8s.core.v1.ServicePortArgs(name="http", port=PORT, target_port="http")],
                ),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.disruption_budget = disruption_budget(f"{name}-pdb", metadata(self.service_name), self.selector, self)
        self.register_outputs({})

    def _cache_volumes(self, name: str, plan: ModelPlan, metadata) -> list[k8s.core.v1.VolumeArgs]:
        cache = plan.model.cache
        if cache.type == "emptyDir":
            return [k8s.core.v1.VolumeArgs(name="cache", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=cache.size))]
        claim = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-cache",
            k8s.core.v1.PersistentVolumeClaimInitArgs(
                metadata=metadata(f"{self.service_name}-cache"),
                spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                    access_modes=[cache.access_mode],
                    storage_class_name=plan.cache_storage_class,
                    resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": cache.size}),
                ),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        source = k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(claim_name=claim.metadata.apply(lambda m: m.name))
        return [k8s.core.v1.VolumeArgs(name="cache", persistent_volume_claim=source)]


def _product_affinity(gpu: GpuSettings) -> k8s.core.v1.AffinityArgs | None:
    if not gpu.products:
        return None
    return k8s.core.v1.AffinityArgs(
        node_affinity=k8s.core.v1.NodeAffinityArgs(
            required_during_scheduling_ignored_during_execution=k8s.core.v1.NodeSelectorArgs(
                node_selector_terms=[
                    k8s.core.v1.NodeSelectorTermArgs(
                        match_expressions=[
                            k8s.core.v1.NodeSelectorRequirementArgs(key=gpu.product_label, operator="In", values=gpu.products)
                        ]
                    )
                ]
            )
        )
    )
