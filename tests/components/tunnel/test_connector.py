"""The cloudflared connector: hardened, spread, budgeted, its token only from a Secret."""

from __future__ import annotations

from tests.helpers import (
    objects,
    pod_spec,
)


def test_connector_deployment_is_hardened(dev):
    spec = pod_spec(dev, "cloudflared", "dev")
    [container] = spec["containers"]
    assert container["image"] == "cloudflare/cloudflared:2025.11.1"
    assert container["args"] == ["tunnel", "--no-autoupdate", "--loglevel", "info", "--metrics", "0.0.0.0:2000", "run"]
    assert container["env"] == [
        {"name": "TUNNEL_TOKEN", "valueFrom": {"secretKeyRef": {"name": "cloudflared-token", "key": "token"}}}
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/ready", "port": 2000}
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert {t["key"] for t in spec["tolerations"]} == {"nvidia.com/gpu", "amd.com/gpu", "CriticalAddonsOnly"}
    assert all(t["operator"] == "Exists" for t in spec["tolerations"])
    assert {c["topologyKey"] for c in spec["topologySpreadConstraints"]} >= {"kubernetes.io/hostname"}
    [deployment] = [o for o in objects(dev, "dev", "Deployment") if o["metadata"]["name"] == "cloudflared"]
    assert deployment["spec"]["replicas"] == 2


def test_connector_has_a_disruption_budget_selecting_its_pods(dev):
    [deployment] = [o for o in objects(dev, "dev", "Deployment") if o["metadata"]["name"] == "cloudflared"]
    [budget] = [o for o in objects(dev, "dev", "PodDisruptionBudget") if o["metadata"]["name"] == "cloudflared"]
    selector = budget["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert budget["spec"]["maxUnavailable"] == 1


def test_token_reaches_the_cluster_as_a_secret_only(dev):
    [secret] = [o for o in objects(dev, "dev", "Secret") if o["metadata"]["name"] == "cloudflared-token"]
    assert secret["stringData"] == {"token": "[secret]"}
