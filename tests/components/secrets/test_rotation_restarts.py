"""A new secret value restarts the pods that read it, and only those, with direct delivery.

Pods read their secrets from environment variables, once, at start (docs/key-rotation.md); each
pod template carries a fingerprint of the AWS versions behind what it reads, so a new value
changes the template and rolls the Deployment."""

from __future__ import annotations

import yaml

from components.kube import SECRETS_VERSION_ANNOTATION
from offline.engine import ROOT
from tests.conftest import stack_run
from tests.helpers import objects
from tests.variants import EXTERNAL_SECRETS_OVERRIDES

DEV_GATEWAY = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["llm-edge:gateway"]


def with_store_url(url: str) -> dict:
    """dev with an external limit store whose URL (a secret config key) only the gateway reads."""
    return {"gateway": {**DEV_GATEWAY, "sharedLimits": {"mode": "external", "urlConfigKey": "limitStoreUrl"}},
            "limitStoreUrl": url}


def fingerprints(run) -> dict[str, str | None]:
    return {d["metadata"]["name"]: (d["spec"]["template"]["metadata"].get("annotations") or {}).get(SECRETS_VERSION_ANNOTATION)
            for d in objects(run, "dev", "Deployment")}


def test_every_pod_that_reads_a_secret_carries_the_fingerprint_of_its_versions(dev):
    found = fingerprints(dev)
    assert {"cloudflared", "gateway"} <= set(found) and any(name.startswith("vllm-") for name in found)
    assert all(isinstance(value, str) and len(value) == 16 for value in found.values()), found


def test_a_new_value_changes_the_fingerprint_of_its_readers_only():
    before, after = fingerprints(stack_run("dev", with_store_url("redis://a:6379"))), \
        fingerprints(stack_run("dev", with_store_url("redis://b:6379")))
    assert before["gateway"] != after["gateway"], "the gateway reads the store's URL: it must restart"
    assert {n: v for n, v in before.items() if n != "gateway"} == {n: v for n, v in after.items() if n != "gateway"}, \
        "the connectors and vLLM read nothing that changed"


def test_none_with_external_secrets_whose_operator_copies_values_on_its_own_schedule():
    assert set(fingerprints(stack_run("dev", EXTERNAL_SECRETS_OVERRIDES)).values()) == {None}
