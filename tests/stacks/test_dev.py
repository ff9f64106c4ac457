"""The dev stack as a whole: the endpoint secret, one provider per cluster, no zone-level resources."""

from __future__ import annotations

import json

from tests.helpers import (
    AWS_SECRET_VERSION,
    plain,
)


def test_endpoint_secret_tells_applications_the_public_base_url(dev):
    endpoint = json.loads(plain(dev.one(AWS_SECRET_VERSION, "vault-endpoint-value"))["secretString"])
    assert endpoint["base_url"] == "https://llm-dev.example.com/v1"
    assert dev.outputs["baseUrl"] == endpoint["base_url"]


def test_every_kubernetes_object_goes_through_the_cluster_provider(dev):
    kube = [r for r in dev.resources if r.custom and r.type.startswith("kubernetes:")]
    assert kube and {dev.name_of(r.provider_urn) for r in kube} == {"dev"}
    [provider] = dev.of_type("pulumi:providers:kubernetes")
    assert plain(provider)["context"] == "dev-gpu"


def test_no_zone_level_resources_when_the_stack_does_not_own_the_zone(dev):
    assert dev.of_type("cloudflare:index/zoneSetting:ZoneSetting") == []
    assert dev.of_type("cloudflare:index/zone:Zone") == []
    assert [t for t, _ in dev.invokes if t == "cloudflare:index/getZone:getZone"]
