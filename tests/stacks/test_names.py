"""Every name a stack renders fits its platform's limit, for the stack files and for long keys.

Kubernetes: Namespaces and Services are DNS labels (at most 63, RFC 1123 / RFC 1035), other objects
DNS subdomains (253), label values at most 63
(https://kubernetes.io/docs/concepts/overview/working-with-objects/names/,
https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set).
AWS: IAM role names at most 64. Cloudflare: DNS labels 63 and hostnames 253; pool names only
letters, digits, hyphens and underscores.
"""

from __future__ import annotations

import re

import pytest

from components.config import parse_stack_config
from offline.render import kubernetes_objects, unwrap
from tests.config.cases import VALID, errors_of
from tests.conftest import stack_run
from tests.variants import VARIANTS

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
LABEL_NAMED_KINDS = ("Namespace", "Service")
POOL_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

LONG_CLUSTER = "c" * 60
# A 60-character cluster key with external-secrets delivery (an IAM role named after it), in a
# pull-request preview of a large number: the instance label and the role name would overflow.
LONG_NAMES_OVERRIDES = {
    "cloudflare": {"accountId": "0123456789abcdef0123456789abcdef", "zone": "example.com",
                   "addOns": ["advancedCertificateManager"]},
    "traffic": {"validationHostnames": "nested"},
    "secrets": {"delivery": "external-secrets", "region": "eu-west-1", "recoveryWindowDays": 7},
    "clusters": {LONG_CLUSTER: {
        "context": "dev-gpu",
        "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC123",
    }},
    "preview": {"gatewayImage": "ghcr.io/llm-edge/llm-edge-gateway:pr-1-0a1b2c3"},
}
CHECKED = [*VARIANTS, ("long-names", "pr-987654321", LONG_NAMES_OVERRIDES), ("long-names-dev", "dev", {
    **{k: v for k, v in LONG_NAMES_OVERRIDES.items() if k != "preview"}})]


def problems_of(run) -> list[str]:
    problems = []
    for cluster, objects in kubernetes_objects(run).items():
        for obj in objects:
            name, kind = obj["metadata"].get("name", ""), obj["kind"]
            pattern = DNS_LABEL if kind in LABEL_NAMED_KINDS else DNS_SUBDOMAIN
            if not pattern.match(name):
                problems.append(f"{cluster}: {kind} name {name!r} ({len(name)} characters)")
            for labels in _label_maps(obj):
                problems += [f"{cluster}: {kind}/{name} label {k}={v!r}" for k, v in labels.items() if not LABEL_VALUE.match(str(v))]
    for resource in run.resources:
        inputs = unwrap(resource.inputs)
        if resource.type == "aws:iam/role:Role" and len(inputs["name"]) > 64:
            problems.append(f"IAM role {inputs['name']!r}")
        if resource.type == "cloudflare:index/loadBalancerPool:LoadBalancerPool" and not POOL_NAME.match(inputs["name"]):
            problems.append(f"pool {inputs['name']!r}")
        if resource.type == "cloudflare:index/dnsRecord:DnsRecord":
            host = inputs["name"]
            if len(host) > 253 or any(len(label) > 63 for label in host.split(".")):
                problems.append(f"DNS record {host!r}")
    return problems


def _label_maps(obj: dict):
    yield obj["metadata"].get("labels") or {}
    template = (obj.get("spec") or {}).get("template") or {}
    yield (template.get("metadata") or {}).get("labels") or {}
    selector = (obj.get("spec") or {}).get("selector")
    if isinstance(selector, dict):
        yield selector.get("matchLabels") or selector


@pytest.mark.parametrize("variant,stack,overrides", CHECKED, ids=[v[0] for v in CHECKED])
def test_every_rendered_name_fits_its_limit(variant, stack, overrides):
    assert problems_of(stack_run(stack, overrides)) == []


def test_long_names_are_shortened_with_a_hash_not_cut():
    run = stack_run("dev", CHECKED[-1][2])
    [role] = [unwrap(r.inputs)["name"] for r in run.resources if r.type == "aws:iam/role:Role"]
    assert len(role) <= 64 and re.fullmatch(r"dev-c+-[0-9a-f]{8}", role), role
    instances = {o["metadata"]["labels"]["app.kubernetes.io/instance"]
                 for o in kubernetes_objects(run)[LONG_CLUSTER] if o["kind"] == "Deployment"}
    [instance] = instances
    # Cut plain, two stacks whose names share 63 characters would share their labels and selectors.
    assert len(instance) <= 63 and re.fullmatch(r"dev-c+-[0-9a-f]{8}", instance), instance


def test_a_model_key_too_long_for_its_service_name_is_a_config_error():
    raw = {**VALID, "models": {"m" * 60: {"huggingFaceId": "org/model"}}}
    [line] = errors_of(raw)
    assert line == (f"llm-edge:models.{'m' * 60}: is too long: the key names the Kubernetes Service vllm-{'m' * 60}, "
                    "and model keys take at most 58 characters (got 60)")
    parse_stack_config("dev", {**VALID, "models": {"m" * 58: {"huggingFaceId": "org/model"}}})


def test_a_flat_validation_hostname_label_too_long_is_a_config_error():
    raw = {**VALID, "clusters": {LONG_CLUSTER: {"context": "x"}}}
    [line] = errors_of(raw)
    assert line.startswith(f"llm-edge:clusters.{LONG_CLUSTER}: makes the validation hostname label {LONG_CLUSTER}-llm")


def test_preview_numbers_keep_the_namespace_short():
    raw = {**VALID, "preview": {"enabled": True, "number": 10**12}}
    assert errors_of(raw)[0].startswith("llm-edge:preview.number: Input should be less than or equal to 999999999")
