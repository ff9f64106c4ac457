"""Read-only helpers over a recorded StackRun, shared by the stack tests."""

from __future__ import annotations

from typing import Any

from offline.engine import Resource, StackRun
from offline.render import is_secret_value, kubernetes_objects, unwrap

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
TUNNEL = "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"
TUNNEL_CONFIG = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
AWS_SECRET = "aws:secretsmanager/secret:Secret"
AWS_SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"


def plain(resource: Resource) -> dict[str, Any]:
    return unwrap(resource.inputs)


def objects(run: StackRun, cluster: str, kind: str | None = None) -> list[dict[str, Any]]:
    found = kubernetes_objects(run).get(cluster, [])
    return [o for o in found if kind is None or o["kind"] == kind]


def k8s_resource(run: StackRun, kind: str, name: str, cluster: str) -> Resource:
    """The registered Kubernetes resource of one cluster with metadata.name `name`."""
    matches = [
        r
        for r in run.resources
        if r.custom
        and r.type.startswith("kubernetes:")
        and unwrap(r.inputs).get("kind") == kind
        and unwrap(r.inputs).get("metadata", {}).get("name") == name
        and run.name_of(r.provider_urn) == cluster
    ]
    assert len(matches) == 1, f"{kind}/{name} in {cluster}: {len(matches)} found"
    return matches[0]


def pod_spec(run: StackRun, name: str, cluster: str) -> dict[str, Any]:
    return plain(k8s_resource(run, "Deployment", name, cluster))["spec"]["template"]["spec"]


def ingress_rules(run: StackRun, tunnel_component: str) -> list[dict[str, Any]]:
    config = run.one(TUNNEL_CONFIG, f"{tunnel_component}-config")
    return plain(config)["config"]["ingresses"]


def secret_marked(value: Any) -> bool:
    return is_secret_value(value)
