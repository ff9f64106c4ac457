"""Kubernetes labels shared by every object the stack creates.

Alerts, pod monitors, NetworkPolicies and PodDisruptionBudgets select pods by these labels, so
they are built in one place.
"""

PART_OF = "llm-edge"


def selector_labels(app: str, instance: str) -> dict[str, str]:
    """The stable labels a Deployment selects its pods by (immutable after creation)."""
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": instance}


def object_labels(app: str, instance: str, component: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **selector_labels(app, instance),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
        **(extra or {}),
    }
