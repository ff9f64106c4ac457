"""Builders for the policy rule tests: resources in the shape the policy engine passes them."""

from __future__ import annotations

import copy
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from policies.pack import POLICIES
from policies.runner import settings

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
BOUNDED = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}


def policy(name: str):
    [found] = [p for p in POLICIES if p.name == name]
    return found


def defaults(name: str, **overrides: Any) -> dict[str, Any]:
    """The policy's config as the CLI hands it over: schema defaults, then the given settings."""
    return {**settings(POLICIES, {})[name].config, **overrides}


def urn(type_token: str, name: str) -> str:
    return f"urn:pulumi:test::llm-edge::{type_token}::{name}"


def violations(name: str, type_token: str, props: dict[str, Any], **config: Any) -> list[str]:
    found: list[str] = []
    args = ResourceValidationArgs(type_token, props, urn(type_token, "r"), "r", OPTIONS, None, defaults(name, **config))
    policy(name).validate(args, lambda message, _urn=None: found.append(message))
    return found


def stack_violations(name: str, resources: list[tuple[str, dict[str, Any]]], **config: Any) -> list[str]:
    found: list[str] = []
    policy_resources = [
        PolicyResource(t, props, urn(t, f"r{i}"), f"r{i}", OPTIONS, None, None, [], {})
        for i, (t, props) in enumerate(resources)
    ]
    args = StackValidationArgs(policy_resources, defaults(name, **config))
    policy(name).validate(args, lambda message, _urn=None: found.append(message))
    return found


def container(name: str = "app", image: str = "ghcr.io/example/app:1.2.3", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "resources": copy.deepcopy(BOUNDED), **fields}


def deployment(
    containers: list[dict[str, Any]],
    labels: dict[str, str] | None = None,
    replicas: int | None = 2,
    name: str = "app",
    namespace: str = "llm-edge",
    **pod: Any,
) -> dict[str, Any]:
    labels = labels or {"app.kubernetes.io/name": name}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": containers, **pod}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def budget(labels: dict[str, str], namespace: str = "llm-edge") -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "pdb", "namespace": namespace},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
    }
