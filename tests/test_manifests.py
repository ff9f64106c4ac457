"""Layer 3: every rendered Kubernetes object validates against the Kubernetes OpenAPI schema."""

from __future__ import annotations

import kubernetes_validate
import pytest

from offline.render import kubernetes_objects
from tests.conftest import stack_run
from tests.variants import VARIANTS

KUBERNETES_VERSION = kubernetes_validate.latest_version()
# Custom resources have no schema in kubernetes-validate; their own tests check them.
CUSTOM_API_GROUPS = ("external-secrets.io/", "monitoring.coreos.com/")


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
