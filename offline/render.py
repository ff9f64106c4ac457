"""Turns a recorded StackRun into the `synth` artefacts: resources, outputs, manifests."""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml

from offline.engine import Resource, StackRun

SECRET = "[secret]"
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def is_secret_value(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def redact(value: Any) -> Any:
    """Replace every secret by "[secret]"; unknown values (not known offline) by "[unknown]"."""
    if is_secret_value(value):
        return SECRET
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if value == UNKNOWN:
        return "[unknown]"
    return value


def unwrap(value: Any) -> Any:
    """The plain value, secrets unwrapped (for tests that inspect what was registered)."""
    if is_secret_value(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def resource_records(run: StackRun) -> list[dict[str, Any]]:
    return [
        {
            "type": r.type,
            "name": r.name,
            "parent": run.name_of(r.parent_urn),
            "provider": run.name_of(r.provider_urn),
            "inputs": redact(r.inputs),
            "options": r.options,
        }
        for r in sorted(run.resources, key=lambda r: (r.type, r.name))
    ]


def kubernetes_objects(run: StackRun) -> dict[str, list[dict[str, Any]]]:
    """Kubernetes objects grouped by cluster (the name of their Kubernetes provider)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(run.resources, key=lambda r: (r.type, r.name)):
        if not (r.custom and r.type.startswith("kubernetes:")):
            continue
        grouped.setdefault(run.name_of(r.provider_urn) or "default", []).append(manifest(r))
    return grouped


def manifest(resource: Resource) -> dict[str, Any]:
    """The object as Kubernetes expects it: apiVersion and kind first, Secret data redacted."""
    body = {k: v for k, v in resource.inputs.items() if not k.startswith("__")}
    if body.get("kind") == "Secret":
        for field in ("data", "stringData"):
            if field in body:
                body[field] = {key: SECRET for key in unwrap(body[field])}
    ordered = {"apiVersion": body.pop("apiVersion"), "kind": body.pop("kind"), "metadata": body.pop("metadata", {})}
    ordered.update(body)
    return redact(ordered)


class _ManifestDumper(yaml.SafeDumper):
    """Multi-line strings (a ConfigMap's files) as literal blocks, as people write them."""


_ManifestDumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None),
)


def manifests_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.dump_all(objects, Dumper=_ManifestDumper, sort_keys=False, default_flow_style=False)


def plan_summary(run: StackRun) -> str:
    counts = Counter(r.type for r in run.resources)
    lines = [f"stack {run.stack}: {len(run.resources)} resources"]
    lines += [f"  {count:3d}  {type_token}" for type_token, count in sorted(counts.items())]
    lines.append("outputs:")
    for key, value in sorted(redact(run.outputs).items()):
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)
