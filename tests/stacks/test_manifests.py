"""Every rendered Kubernetes object validates against the Kubernetes OpenAPI schema."""

from __future__ import annotations

import json
import shutil
import subprocess

import kubernetes_validate
import pytest

from offline.engine import ROOT
from offline.render import kubernetes_objects
from tests.conftest import stack_run
from tests.variants import VARIANTS

KUBERNETES_VERSION = kubernetes_validate.latest_version()
# Custom resources have no schema in kubernetes-validate: tests/crd/validate.mjs checks them
# against their CRDs (External Secrets Operator, prometheus-operator).
CUSTOM_API_GROUPS = ("external-secrets.io/", "monitoring.coreos.com/")
CRD_VALIDATOR = ROOT / "tests" / "crd"


def validate_custom_resources(objects: list[dict]) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    if node is None or not (CRD_VALIDATOR / "node_modules").is_dir():
        pytest.fail("custom resource schemas are not installed: run `make tools` (needs Node.js and npm)")
    return subprocess.run(
        [node, str(CRD_VALIDATOR / "validate.mjs")], input=json.dumps(objects), capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("variant,stack,overrides", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_every_builtin_object_passes_strict_schema_validation(variant, stack, overrides):
    run = stack_run(stack, overrides)
    checked = 0
    for cluster, objects in kubernetes_objects(run).items():
        for obj in objects:
            if obj["apiVersion"].startswith(CUSTOM_API_GROUPS):
                continue
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{cluster}: {obj['kind']}/{obj['metadata'].get('name')}: {error.message} at {list(error.path)}")
            checked += 1
    assert checked >= 4


def test_schema_validation_catches_a_misspelt_field():
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "replica": 2, "template": {"spec": {"containers": []}}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("variant,stack,overrides", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_every_custom_resource_passes_its_crd_schema(variant, stack, overrides):
    run = stack_run(stack, overrides)
    custom = [o for objects in kubernetes_objects(run).values() for o in objects if o["apiVersion"].startswith(CUSTOM_API_GROUPS)]
    if not custom:
        return
    result = validate_custom_resources(custom)
    assert result.returncode == 0, result.stdout + result.stderr


def test_crd_validation_catches_a_wrong_value():
    bad = {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": "x"},
        "spec": {"target": {"name": "x", "creationPolicy": "Sometimes"}, "secretStoreRef": {"name": "s", "kind": "SecretStore"}},
    }
    result = validate_custom_resources([bad])
    assert result.returncode == 1 and "creationPolicy" in result.stdout
