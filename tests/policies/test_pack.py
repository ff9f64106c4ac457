"""The whole pack, evaluated in-process over every synthesized stack variant."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys

import pytest
import yaml
from pulumi_policy import EnforcementLevel

from offline.engine import ROOT, StackRun
from policies import runner
from policies.pack import POLICIES
from tests.conftest import stack_run
from tests.variants import PROD_SHARED_LIMITS_IN_CLUSTER_OVERRIDES, VARIANTS

UNSAFE_STACK = ROOT / "tests" / "policies" / "unsafe" / "Pulumi.unsafe.yaml"
PROD_CLUSTERS = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]["llm-edge:clusters"]


def policy_settings(stack: str):
    return runner.settings(POLICIES, runner.load_policy_config(runner.config_path(stack)))


@pytest.mark.parametrize("variant,stack,overrides", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_every_variant_passes_every_mandatory_rule(variant, stack, overrides):
    found = runner.evaluate(stack_run(stack, overrides), policy_settings(stack))
    mandatory = [str(v) for v in found if v.level == EnforcementLevel.MANDATORY]
    assert mandatory == []


def test_enforcement_is_set_per_stack():
    dev, prod, preview = policy_settings("dev"), policy_settings("prod"), policy_settings("pr-7")
    # Every rule is mandatory in prod except the digest warning.
    assert {name for name, s in prod.items() if s.level != EnforcementLevel.MANDATORY} == {"images-pinned-by-digest"}
    assert dev["no-public-entry"].level == EnforcementLevel.ADVISORY
    assert dev["prod-availability"].level == preview["prod-availability"].level == EnforcementLevel.DISABLED
    assert dev["tunnel-origin-tls"].level == EnforcementLevel.DISABLED
    assert prod["tunnel-origin-tls"].level == preview["tunnel-origin-tls"].level == EnforcementLevel.MANDATORY
    assert (dev["secrets-recovery-window"].config["minimumDays"], prod["secrets-recovery-window"].config["minimumDays"]) == (0, 7)
    assert preview["preview-disposable"].config["previewStack"] is True
    assert prod["gpu-scheduling"].config["gpuWorkloadLabel"] == "app.kubernetes.io/component=inference"


AKS_GPU_TAINTS = [{"key": "sku", "value": "gpu", "effect": "NoSchedule"}]


def test_a_clusters_own_gpu_taints_pass_once_the_policy_config_names_them():
    # green's GPU pool tainted as AKS documents (sku=gpu:NoSchedule): its vLLM pods tolerate that
    # taint, not amd.com/gpu, and gpu-scheduling is told the pool's taints in the policy config.
    clusters = copy.deepcopy(PROD_CLUSTERS)
    clusters["green"]["gpu"]["taints"] = AKS_GPU_TAINTS
    run = stack_run("prod", {"clusters": clusters})
    refused = [v for v in runner.evaluate(run, policy_settings("prod")) if v.rule == "gpu-scheduling"]
    assert len(refused) == 2 and all("amd.com/gpu" in v.message and "green" in v.resource for v in refused)
    told = {**runner.load_policy_config(runner.config_path("prod")), "gpu-scheduling": {"gpuNodeTaints": [AKS_GPU_TAINTS]}}
    assert [str(v) for v in runner.evaluate(run, runner.settings(POLICIES, told)) if v.rule == "gpu-scheduling"] == []
    with pytest.raises(runner.PolicyConfigError, match="gpu-scheduling"):
        runner.settings(POLICIES, {"gpu-scheduling": {"gpuNodeTaints": [[{"value": "gpu"}]]}})


def test_policy_config_mistakes_are_named():
    with pytest.raises(runner.PolicyConfigError, match="unknown policies no-such-rule"):
        runner.settings(POLICIES, {"no-such-rule": "mandatory"})
    with pytest.raises(runner.PolicyConfigError, match="enforcement level 'strict'"):
        runner.settings(POLICIES, {"all": "strict"})
    with pytest.raises(runner.PolicyConfigError, match="has no setting minimumDayz"):
        runner.settings(POLICIES, {"secrets-recovery-window": {"minimumDayz": 3}})
    with pytest.raises(runner.PolicyConfigError, match="secrets-recovery-window"):
        runner.settings(POLICIES, {"secrets-recovery-window": {"minimumDays": "seven"}})
    with pytest.raises(runner.PolicyConfigError, match="no policy config .*staging.json"):
        runner.load_policy_config(runner.config_path("staging"))


def _changed(run: StackRun, name: str, change) -> StackRun:
    """A copy of the run with one resource's recorded inputs changed."""
    resources = [
        dataclasses.replace(r, inputs=change(json.loads(json.dumps(r.inputs)))) if r.name == name else r
        for r in run.resources
    ]
    assert resources != run.resources, f"no resource {name}"
    return dataclasses.replace(run, resources=resources)


def _pod(inputs):
    return inputs["spec"]["template"]["spec"]


MUTATIONS = {
    # rule -> (resource name in prod, change to its recorded inputs)
    "prod-availability": ("blue-connector-deployment", lambda i: {**i, "spec": {**i["spec"], "replicas": 1}}),
    "cloudflared-no-autoupdate": (
        "blue-connector-deployment",
        lambda i: (_pod(i)["containers"][0].update(args=["tunnel", "run"]), i)[1],
    ),
    "tunnel-catch-all": ("tunnel-blue-config", lambda i: (i["config"]["ingresses"].pop(), i)[1]),
    "tunnel-dns-proxied": ("traffic-public", lambda i: {**i, "proxied": False}),
    "zone-tls-settings": ("edge-ssl", lambda i: {**i, "value": "full"}),
    "pinned-images": (
        "blue-connector-deployment",
        lambda i: (_pod(i)["containers"][0].update(image="cloudflare/cloudflared:latest"), i)[1],
    ),
}


# The shared-limits store (gateway.sharedLimits: in-cluster) is a workload of its own in each cluster.
STORE_MUTATIONS = {
    "requests-and-limits": ("blue-limit-store-deployment",
                            lambda i: (_pod(i)["containers"][0].pop("resources"), i)[1]),
    "pinned-images": ("green-limit-store-deployment",
                      lambda i: (_pod(i)["containers"][0].update(image="valkey/valkey:latest"), i)[1]),
}


def _new_violations(run: StackRun, name: str, change) -> set[str]:
    before = {str(v) for v in runner.evaluate(run, policy_settings("prod"))}
    found = runner.evaluate(_changed(run, name, change), policy_settings("prod"))
    return {v.rule for v in found if str(v) not in before}


@pytest.mark.parametrize("rule", sorted(MUTATIONS))
def test_rules_read_the_resources_as_the_engine_records_them(rule):
    """Breaking one recorded prod resource trips exactly the rule that guards it."""
    assert _new_violations(stack_run("prod"), *MUTATIONS[rule]) == {rule}


@pytest.mark.parametrize("rule", sorted(STORE_MUTATIONS))
def test_the_rules_guard_the_limit_store_workload(rule):
    assert _new_violations(stack_run("prod", PROD_SHARED_LIMITS_IN_CLUSTER_OVERRIDES), *STORE_MUTATIONS[rule]) == {rule}


def test_unsafe_stack_fails_with_the_rules_it_breaks(capsys):
    code = runner.main(
        ["--stack", "unsafe", "--stack-file", str(UNSAFE_STACK), "--config", str(runner.CONFIG_DIR / "prod.json")]
    )
    lines = capsys.readouterr().out.splitlines()
    rules = {line.split()[1] for line in lines if line.startswith("mandatory")}
    assert code == 1
    assert rules == {"tunnel-origin-tls", "secrets-recovery-window"}
    assert "4 mandatory" in lines[-1]


def test_runner_names_a_missing_policy_config(capsys):
    assert runner.main(["--stack", "staging"]) == 2
    assert "no policy config" in capsys.readouterr().err


def test_the_real_pack_starts_as_pulumi_runs_it():
    """Pulumi runs the pack directory as a script; it must import its rules and serve (printing its port)."""
    process = subprocess.Popen(
        [sys.executable, "-u", str(ROOT / "policies")], cwd=ROOT / "policies", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        port = process.stdout.readline().decode().strip()
    finally:
        process.kill()
        process.wait()
    assert port.isdigit(), process.stderr.read().decode()
