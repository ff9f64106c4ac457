"""`make preflight`: what must exist before `pulumi up`, read off each rendered variant."""

from __future__ import annotations

import re

import pytest

from offline.__main__ import main
from offline.engine import ROOT
from offline.preflight import TOKEN_PERMISSIONS, report
from offline.secret_config import secret_config_keys
from tests.conftest import stack_run
from tests.variants import (
    PREVIEW_OVERRIDES,
    PROD_ACCESS_OVERRIDES,
    PROD_SHARED_LIMITS_EXTERNAL_OVERRIDES,
    PROD_WEIGHTED_OVERRIDES,
)

PROD_SECRETS = {"HUGGING_FACE_TOKEN": "hf_x", "ALERTS_WEBHOOK_URL": "https://hooks.example.com/x"}


def sections(stack: str, overrides=None, environ=None) -> dict[str, list[str]]:
    found = report(stack_run(stack, overrides), secret_config_keys(stack, overrides), environ or {})
    return {title: [("MISSING " if line.missing else "") + line.text for line in lines] for title, lines in found.items()}


def token_line(found: dict[str, list[str]]) -> str:
    [line] = [line for line in found["Cloudflare"] if line.startswith("API token")]
    return line


def test_prod_needs_its_plan_certificate_webhook_and_the_token_permissions_of_what_it_creates():
    found = sections("prod", environ=PROD_SECRETS)
    cloudflare = "\n".join(found["Cloudflare"])
    assert "zone example.com on the pro plan; add-ons: advancedCertificateManager, loadBalancing" in cloudflare
    assert "this stack orders example.com, *.llm.example.com" in cloudflare
    assert "answers 2xx to a POST" in cloudflare
    assert "pulumi import cloudflare:index/ruleset:Ruleset edge-protection-rate-limit" in cloudflare
    token = token_line(found)
    for permission in ("Zone > Zone WAF > Edit", "Zone > SSL and Certificates > Edit", "Account > Notifications > Edit",
                       "Account > Cloudflare Tunnel > Edit", "Zone > DNS > Edit", "Zone > Zone Settings > Edit"):
        assert permission in token
    assert "Load Balancers" not in token and "Access" not in token


def test_weighted_and_access_variants_add_their_permissions():
    assert "Zone > Load Balancers > Edit; " in token_line(sections("prod", PROD_WEIGHTED_OVERRIDES))
    assert "Account > Load Balancing: Monitors and Pools > Edit" in token_line(sections("prod", PROD_WEIGHTED_OVERRIDES))
    access = token_line(sections("prod", PROD_ACCESS_OVERRIDES))
    assert "Account > Access: Apps and Policies > Edit" in access and "Account > Access: Service Tokens > Edit" in access


def test_dev_owns_nothing_zone_wide():
    token = token_line(sections("dev"))
    assert "Zone WAF" not in token and "Zone Settings" not in token and "Zone > Zone > Read" in token


def test_each_cluster_lists_its_vendor_operators_storage_and_pod_security():
    found = sections("prod", environ=PROD_SECRETS)
    blue, green = "\n".join(found["Cluster blue"]), "\n".join(found["Cluster green"])
    assert "NVIDIA device plugin" in blue and "(selected: NVIDIA-H100-80GB-HBM3)" in blue
    assert "AMD GPU device plugin" in green and "amd.com/gpu.product-name" in green
    for text in (blue, green):
        assert "External Secrets Operator v0.17 or later" in text
        assert "a Prometheus selecting release=kube-prometheus-stack" in text
        assert "namespace llm-edge: Pod Security baseline enforced" in text
    assert "storage class efs-models offering ReadWriteMany" in blue
    assert "dashboard sidecar watching ConfigMaps labelled grafana_dashboard=1" in blue
    # green is AKS: its own storage class, and no IRSA role for External Secrets.
    assert "storage class azurefile-csi-premium offering ReadWriteMany" in green
    assert "controller's own AWS credentials" in green and "controller's own AWS credentials" not in blue
    dev = "\n".join(sections("dev")["Cluster dev"])
    assert "External Secrets" not in dev and "kubeconfig context dev-gpu" in dev


def test_an_external_limit_store_is_a_prerequisite_of_every_cluster_and_its_url_a_secret_config_key():
    found = sections("prod", PROD_SHARED_LIMITS_EXTERNAL_OVERRIDES, PROD_SECRETS)
    for cluster in ("blue", "green"):
        assert any("reach the external limit store" in line for line in found[f"Cluster {cluster}"])
    assert any(line.startswith("MISSING limitStoreUrl: not set") for line in found["Secret config keys"])
    assert not any("limit store" in line for line in sections("prod", environ=PROD_SECRETS)["Cluster blue"])


def test_a_preview_borrows_the_source_stacks_vllm_key():
    aws = "\n".join(sections("pr-123", PREVIEW_OVERRIDES)["AWS"])
    assert "secretsmanager:GetSecretValue on llm-edge/dev/vllm-api-key" in aws


def test_unset_secret_config_keys_are_missing_and_fail_the_preflight(capsys, monkeypatch):
    missing = sections("prod")["Secret config keys"]
    assert [line for line in missing if line.startswith("MISSING ")] == [
        "MISSING alertsWebhookUrl: not set: pulumi config set --secret alertsWebhookUrl <value> (CI: repository secret ALERTS_WEBHOOK_URL)",
        "MISSING huggingFaceToken: not set: pulumi config set --secret huggingFaceToken <value> (CI: repository secret HUGGING_FACE_TOKEN)",
    ]
    for name in PROD_SECRETS:
        monkeypatch.delenv(name, raising=False)
    assert main(["preflight", "--stack", "prod"]) == 1
    assert "2 missing" in capsys.readouterr().err
    for name, value in PROD_SECRETS.items():
        monkeypatch.setenv(name, value)
    assert main(["preflight", "--stack", "prod"]) == 0
    assert main(["preflight", "--stack", "dev"]) == 0
    assert main(["preflight", "--stack", "pr-123"]) == 0


@pytest.mark.parametrize("assignment,code,message", [
    ("traffic.weights.green=0", 2, "llm-edge:traffic.weights: sum to 0"),
    ("traffic.weights.blue=100", 0, "Load Balancing add-on on the account"),
])
def test_preflight_takes_set_as_synth_does(capsys, monkeypatch, assignment, code, message):
    for name, value in PROD_SECRETS.items():
        monkeypatch.setenv(name, value)
    assert main(["preflight", "--stack", "prod", "--set", "traffic.mode=weighted", "--set", assignment]) == code
    output = capsys.readouterr()
    assert message in output.out + output.err


def test_the_documented_token_table_is_the_one_the_preflight_derives():
    text = (ROOT / "docs" / "deploying.md").read_text()
    documented = set(re.findall(r"^\| (Zone|Account) > ([^|]+?) > (Read|Edit) \|", text, re.MULTILINE))
    assert documented == set(TOKEN_PERMISSIONS.values())
