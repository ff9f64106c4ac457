"""Pull-request preview stacks: `pr-<N>` is dev's config plus a few keys, turned into a disposable copy.

The pr-stack workflow creates the stack by copying dev's config and setting `preview.enabled`,
`preview.number` and `preview.gatewayImage`; a stack named `pr-<N>` is a preview even without
them. `derive_preview` then rewrites the parsed config, so the program (and the offline engine)
build:
- its own namespace `llm-edge-pr-<N>` in each of dev's clusters, its own tunnel, and the hostname
  `pr-<N>.<preview.domain>` (default: the zone);
- one connector: a preview serves its author, not clients, and the config model's two-replica
  minimum exists for node drains in real environments (users cannot set 1; only this does);
- no zone-level resources (edge settings dropped) and none of dev's extra hostname routes;
- secrets deleted at once on destroy, so re-opening a PR can re-create the same secret names;
- the gateway image built from the pull request (`preview.gatewayImage`; default: dev's);
- no validation hostname and no Cloudflare tunnel-health notification (nobody is paged for it);
- no vLLM: `is_preview` tells the model components to route to dev's model Services in
  `preview.modelsNamespace` instead of running GPUs.
"""

from __future__ import annotations

import re
from typing import Any

from components.config import ConfigError, Edge, StackConfig

PREVIEW_STACK_NAME = re.compile(r"pr-([0-9]+)")
# On the namespace (and as AWS tags): what a clean-up job or a human looks for before deleting.
DISPOSABLE_LABEL = "llm-edge.dev/disposable"
PULL_REQUEST_LABEL = "llm-edge.dev/pull-request"


def preview_from_stack_name(stack: str, raw: dict[str, Any]) -> dict[str, Any]:
    """A stack named `pr-<N>` is a preview of pull request N unless its config says otherwise."""
    match = PREVIEW_STACK_NAME.fullmatch(stack)
    preview = raw.get("preview", {})
    if not match or not isinstance(preview, dict):
        return raw
    return {**raw, "preview": {"enabled": True, "number": int(match.group(1)), **preview}}


def preview_namespace(number: int) -> str:
    return f"llm-edge-pr-{number}"


def derive_preview(config: StackConfig) -> StackConfig:
    """The preview stack's config, from the (dev) config it was copied from."""
    preview = config.preview
    number = preview.number
    models_namespace = preview.models_namespace or _dev_namespace(config)
    clusters = {
        name: cluster.model_copy(
            update={
                "namespace": preview_namespace(number),
                "connector": cluster.connector.model_copy(update={"replicas": 1}),
            }
        )
        for name, cluster in config.clusters.items()
    }
    return config.model_copy(
        update={
            "public_hostname": f"pr-{number}.{preview.domain or config.cloudflare.zone}",
            "edge": Edge(),
            "routes": [],
            "clusters": clusters,
            "secrets": config.secrets.model_copy(update={"recovery_window_days": 0}),
            "preview": preview.model_copy(update={"models_namespace": models_namespace}),
            "gateway": config.gateway.model_copy(update={"image": preview.gateway_image or config.gateway.image}),
            # Nobody is paged for a pull request's tunnel; its Prometheus alerts stay (same cluster).
            "alerts": config.alerts.model_copy(update={"tunnel_notifications": False}),
        }
    )


def disposable_labels(config: StackConfig) -> dict[str, str]:
    """Labels (and AWS tags) marking a preview's objects as safe to delete; empty for other stacks."""
    if not config.is_preview:
        return {}
    return {DISPOSABLE_LABEL: "true", PULL_REQUEST_LABEL: str(config.preview.number)}


def disposable_annotations(config: StackConfig) -> dict[str, str]:
    """Which Pulumi stack owns a preview's namespace, for whoever finds it left behind."""
    if not config.is_preview:
        return {}
    return {"llm-edge.dev/stack": config.stack}


def _dev_namespace(config: StackConfig) -> str:
    namespaces = {cluster.namespace for cluster in config.clusters.values()}
    if len(namespaces) != 1:
        raise ConfigError(
            "invalid stack config:\n  llm-edge:preview.modelsNamespace: is required when the clusters use "
            f"different namespaces ({', '.join(sorted(namespaces))}): name the namespace of dev's model Services"
        )
    return namespaces.pop()
