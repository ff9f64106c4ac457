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

This module is the one home of the `pr-<N>` naming rule: the offline engine, `synth --set` and
the policy runner ask `preview_number` too.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from components.config.base import ConfigError, DnsLabel, Hostname, Model, PinnedImage
from components.config.edge import EdgeSettings

if TYPE_CHECKING:
    from components.config.stack import StackSettings

_PREVIEW_STACK_NAME = re.compile(r"pr-([0-9]+)")
# On the namespace (and as AWS tags): what a clean-up job or a human looks for before deleting.
# The firewall of the stack previews are made from admits gateways from namespaces with it.
DISPOSABLE_LABEL = "llm-edge.dev/disposable"
PULL_REQUEST_LABEL = "llm-edge.dev/pull-request"
STACK_ANNOTATION = "llm-edge.dev/stack"


class PreviewSettings(Model):
    """A pull-request preview stack `pr-<N>`, derived from dev's config (docs/previews.md).

    The workflow copies dev's config into the new stack and sets `enabled`, `number` and
    `gatewayImage`; dev's own config may set `domain`.
    """

    enabled: bool = False
    # A pull request number; nine digits keep the namespace llm-edge-pr-<N> far below 63 characters.
    number: Annotated[int, Field(ge=1, le=999_999_999)] | None = None
    # Preview hostnames are `pr-<N>.<domain>`; default: the zone (covered by its universal certificate).
    domain: Hostname | None = None
    # The gateway image built from the pull request.
    gateway_image: PinnedImage | None = None
    # Namespace of dev's model Services the preview's gateway routes to; default: dev's namespace.
    models_namespace: DnsLabel | None = None
    # The stack whose models (and vLLM API key, read from its AWS secret) the preview uses.
    source_stack: DnsLabel = "dev"


def preview_number(stack: str) -> int | None:
    """N for a stack named `pr-<N>` (a preview of pull request N), else None."""
    match = _PREVIEW_STACK_NAME.fullmatch(stack)
    return int(match.group(1)) if match else None


def preview_from_stack_name(stack: str, raw: dict[str, Any]) -> dict[str, Any]:
    """A stack named `pr-<N>` is a preview of pull request N unless its config says otherwise."""
    number = preview_number(stack)
    preview = raw.get("preview", {})
    if number is None or not isinstance(preview, dict):
        return raw
    return {**raw, "preview": {"enabled": True, "number": number, **preview}}


def preview_namespace(number: int) -> str:
    return f"llm-edge-pr-{number}"


def derive_preview(config: StackSettings) -> StackSettings:
    """The preview stack's config, from the (dev) config it was copied from."""
    preview = config.preview
    assert preview.number is not None, "checked when the config was parsed"
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
            "edge": EdgeSettings(),
            "routes": [],
            "clusters": clusters,
            "secrets": config.secrets.model_copy(update={"recovery_window_days": 0}),
            "preview": preview.model_copy(update={"models_namespace": models_namespace}),
            "gateway": config.gateway.model_copy(update={"image": preview.gateway_image or config.gateway.image}),
            # Nobody is paged for a pull request's tunnel; its Prometheus alerts stay (same cluster).
            "alerts": config.alerts.model_copy(update={"tunnel_notifications": False}),
        }
    )


def disposable_labels(config: StackSettings) -> dict[str, str]:
    """Labels (and AWS tags) marking a preview's objects as safe to delete; empty for other stacks."""
    if not config.is_preview:
        return {}
    return {DISPOSABLE_LABEL: "true", PULL_REQUEST_LABEL: str(config.preview.number)}


def disposable_annotations(config: StackSettings) -> dict[str, str]:
    """Which Pulumi stack owns a preview's namespace, for whoever finds it left behind."""
    if not config.is_preview:
        return {}
    return {STACK_ANNOTATION: config.stack}


def _dev_namespace(config: StackSettings) -> str:
    namespaces = {cluster.namespace for cluster in config.clusters.values()}
    if len(namespaces) != 1:
        raise ConfigError(
            "invalid stack config:\n  llm-edge:preview.modelsNamespace: is required when the clusters use "
            f"different namespaces ({', '.join(sorted(namespaces))}): name the namespace of dev's model Services"
        )
    return namespaces.pop()
