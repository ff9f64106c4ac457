"""gateway.sharedLimits as the stack deploys it: the in-cluster Valkey and its password, or an
external store's URL, and the gateway config that points at them (read by the gateway's parser)."""

from __future__ import annotations

import pytest

from gateway.config import parse_config, resolve_secrets
from tests.components.gateway.test_gateway import rendered_config
from tests.conftest import stack_run
from tests.helpers import AWS_SECRET_VERSION, objects, pod_spec, secret_marked
from tests.variants import PROD_SHARED_LIMITS_EXTERNAL_OVERRIDES, PROD_SHARED_LIMITS_IN_CLUSTER_OVERRIDES

CLUSTERS = ("blue", "green")


@pytest.fixture(scope="module")
def in_cluster():
    return stack_run("prod", PROD_SHARED_LIMITS_IN_CLUSTER_OVERRIDES)


@pytest.fixture(scope="module")
def external():
    return stack_run("prod", PROD_SHARED_LIMITS_EXTERNAL_OVERRIDES)


def gateway_env(run, cluster: str) -> dict[str, dict]:
    [container] = pod_spec(run, "gateway", cluster)["containers"]
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}


def started_config(run, cluster: str):
    """The gateway's config and what its start-up reads from the environment the Deployment gives it."""
    config = parse_config(rendered_config(run, cluster))
    environ = {name: "redis://store.example:6379/0" if name == "LIMIT_STORE_URL" else f"{index:064x}"
               for index, name in enumerate(gateway_env(run, cluster))}
    return config, resolve_secrets(config, environ)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_in_cluster_each_gateway_uses_its_own_clusters_store_with_the_generated_password(in_cluster, cluster):
    config, secrets = started_config(in_cluster, cluster)
    shared = config.shared_limits
    assert shared is not None
    assert shared.url == "redis://gateway-limits.llm-edge.svc.cluster.local:6379/0"
    assert secrets.limit_store_password is not None
    assert gateway_env(in_cluster, cluster)["LIMIT_STORE_PASSWORD"] == {"name": "gateway-limit-store", "key": "password"}
    # While the store is away each replica allows limit / 3: at the autoscaler's floor the fleet keeps the limit.
    assert (shared.fallback_replicas, shared.timeout_ms, shared.key_prefix) == (3, 20, "llm-edge:prod:limits:")
    [store] = pod_spec(in_cluster, "gateway-limits", cluster)["containers"]
    assert store["env"] == [{"name": "VALKEY_PASSWORD",
                             "valueFrom": {"secretKeyRef": {"name": "gateway-limit-store", "key": "password"}}}]
    assert store["args"][:2] == ["--requirepass", "$(VALKEY_PASSWORD)"]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_the_store_runs_hardened_without_persistence(in_cluster, cluster):
    spec = pod_spec(in_cluster, "gateway-limits", cluster)
    [store] = spec["containers"]
    assert store["image"] == "valkey/valkey:8.1.4"
    assert store["securityContext"]["readOnlyRootFilesystem"] is True
    assert store["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["runAsUser"] == 999 and spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    # The one writable place is its data directory, and nothing is saved there.
    assert store["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert "emptyDir" in spec["volumes"][0]
    assert store["args"][store["args"].index("--save") + 1] == "" and "--appendonly" in store["args"]
    assert set(store["resources"]) == {"requests", "limits"}


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_only_the_gateway_reaches_the_store(in_cluster, cluster):
    [policy] = [p for p in objects(in_cluster, cluster, "NetworkPolicy") if p["metadata"]["name"] == "allow-to-gateway-limits"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "gateway-limits"
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    assert [peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in rule["from"]] == ["gateway"]
    [service] = [s for s in objects(in_cluster, cluster, "Service") if s["metadata"]["name"] == "gateway-limits"]
    assert service["spec"]["type"] == "ClusterIP"


def test_the_password_is_generated_once_kept_secret_and_delivered_from_the_vault(in_cluster):
    version = in_cluster.one(AWS_SECRET_VERSION, "vault-gateway-limit-store-password-value")
    assert secret_marked(version.inputs["secretString"])
    for cluster in CLUSTERS:
        [external_secret] = [o for o in objects(in_cluster, cluster, "ExternalSecret")
                             if o["metadata"]["name"] == "gateway-limit-store"]
        assert external_secret["spec"]["data"] == [
            {"secretKey": "password", "remoteRef": {"key": "llm-edge/prod/gateway/limit-store-password"}}]


def test_external_both_clusters_share_one_store_from_the_secret_config_key(external):
    for cluster in CLUSTERS:
        config, secrets = started_config(external, cluster)
        assert config.shared_limits is not None and config.shared_limits.url_env == "LIMIT_STORE_URL"
        assert config.shared_limits.key_prefix == "llm-edge:prod:limits:"
        assert gateway_env(external, cluster)["LIMIT_STORE_URL"] == {"name": "gateway-limit-store", "key": "url"}
        assert not [d for d in objects(external, cluster, "Deployment") if d["metadata"]["name"] == "gateway-limits"]
    version = external.one(AWS_SECRET_VERSION, "vault-gateway-limit-store-url-value")
    assert secret_marked(version.inputs["secretString"])


def test_without_shared_limits_the_gateway_keeps_local_limits(prod_run):
    config, _ = started_config(prod_run, "blue")
    assert config.shared_limits is None
    assert not [d for d in objects(prod_run, "blue", "Deployment") if d["metadata"]["name"] == "gateway-limits"]


@pytest.fixture(scope="module")
def prod_run():
    return stack_run("prod")
