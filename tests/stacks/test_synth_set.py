"""`synth --set KEY=VALUE` (make synth SET=...): render a config variant without editing the stack file."""

from __future__ import annotations

import json
import re

import pytest

from offline.__main__ import main
from offline.overrides import OverrideError, parse_value, split_path, stack_overrides


@pytest.mark.parametrize(
    "text,value", [("true", True), ("false", False), ("90", 90), ("-1", -1), ("green", "green"), ("1.5", "1.5"), ("", "")]
)
def test_values_follow_pulumi_config_set_path(text, value):
    # `pulumi config set --path`: booleans and integers are typed, everything else is a string.
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_paths():
    assert split_path("traffic.weights.blue") == ["traffic", "weights", "blue"]
    assert split_path("routes[0].hostname") == ["routes", 0, "hostname"]
    for bad in ("traffic..active", "[0]", "traffic.", "a[x]"):
        with pytest.raises(OverrideError, match="not a config path"):
            split_path(bad)


def test_assignments_change_one_value_inside_the_stack_files_object():
    overrides = stack_overrides("prod", ["traffic.mode=weighted", "llm-edge:traffic.weights.green=10", "traffic.weights.blue=90"])
    assert overrides == {
        "traffic": {"mode": "weighted", "active": "blue", "validationHostnames": "nested", "weights": {"green": 10, "blue": 90}}
    }
    clusters = stack_overrides("prod", ["clusters.blue.enabled=false"])["clusters"]
    assert clusters["blue"]["enabled"] is False and clusters["blue"]["context"] == "blue-admin" and "green" in clusters
    routes = stack_overrides("prod", ["routes[0].backend=qwen-2-5-72b"])["routes"]
    assert routes[0]["backend"] == "qwen-2-5-72b" and routes[0]["hostname"] == "llama-8b.example.com"


def test_list_items_are_created_as_pulumi_config_set_path_creates_them():
    # prod has no edge.access: the list is created, then appended to one index at a time.
    overrides = stack_overrides(
        "prod", ["edge.access.serviceTokens[0]=webapp", "edge.access.serviceTokens[1]=batch", "routes[1].backend=qwen-2-5-72b"]
    )
    assert overrides["edge"]["access"] == {"serviceTokens": ["webapp", "batch"]}
    assert overrides["edge"]["manageZone"] is True
    assert overrides["routes"][1] == {"backend": "qwen-2-5-72b"} and overrides["routes"][0]["hostname"] == "llama-8b.example.com"


def test_a_preview_stack_is_set_from_devs_file_as_it_is_rendered():
    overrides = stack_overrides("pr-123", ["gateway.replicas=3"])
    assert overrides["gateway"]["replicas"] == 3 and overrides["gateway"]["clients"][0]["name"] == "dev-team"


def test_synth_renders_a_preview_stack_with_an_override(tmp_path):
    assert main(["synth", "--stack", "pr-123", "--out", str(tmp_path), "--set", "gateway.replicas=3"]) == 0
    resources = json.loads((tmp_path / "pr-123" / "resources.json").read_text())
    [autoscaler] = [r for r in resources if r["name"] == "dev-gateway-hpa"]
    assert autoscaler["inputs"]["spec"]["minReplicas"] == 3
    assert autoscaler["inputs"]["metadata"]["namespace"] == "llm-edge-pr-123"


def test_secure_values_keep_their_marking(tmp_path):
    (tmp_path / "Pulumi.s.yaml").write_text(
        "config:\n  llm-edge:clusters:\n    a:\n      context: x\n      token:\n        secure: v1:AAAA\n"
    )
    overrides = stack_overrides("s", ["clusters.a.namespace=other"], root=tmp_path)
    assert overrides == {"clusters": {"a": {"context": "x", "token": {"secure": "v1:AAAA"}, "namespace": "other"}}}


@pytest.mark.parametrize(
    "assignment,message",
    [
        ("traffic.active", "expected KEY=VALUE"),
        ("aws:region=us-east-1", "only llm-edge: keys"),
        ("routes[5].hostname=x.example.com", "index 5 is past the end of the list (it has 1 items)"),
        ("publicHostname[0]=x", "is inside a value that is not a list"),
        ("publicHostname.x=1", "is inside a value that is not a map"),
    ],
)
def test_bad_assignments_say_what_to_write(assignment, message):
    with pytest.raises(OverrideError, match=re.escape(message)):
        stack_overrides("prod", [assignment])


def test_synth_renders_the_variant_and_leaves_the_stack_file_alone(tmp_path, capsys):
    from offline.engine import ROOT

    before = (ROOT / "Pulumi.prod.yaml").read_text()
    assert main(["synth", "--stack", "prod", "--out", str(tmp_path), "--set", "traffic.active=green"]) == 0
    assert "config overridden for this render only: traffic.active=green" in capsys.readouterr().out
    resources = {(r["type"], r["name"]): r for r in json.loads((tmp_path / "prod" / "resources.json").read_text())}
    outputs = json.loads((tmp_path / "prod" / "outputs.json").read_text())
    public = resources[("cloudflare:index/dnsRecord:DnsRecord", "traffic-public")]
    assert public["inputs"]["content"] == f"{outputs['tunnels']['green']}.cfargotunnel.com"
    assert outputs["activeCluster"] == "green"
    assert (ROOT / "Pulumi.prod.yaml").read_text() == before


def test_synth_reports_a_bad_override_without_a_traceback(tmp_path, capsys):
    assert main(["synth", "--stack", "prod", "--out", str(tmp_path), "--set", "traffic.active=purple"]) == 2
    err = capsys.readouterr().err
    assert "llm-edge:traffic.active: names no declared cluster" in err and "Traceback" not in err
    assert main(["synth", "--stack", "prod", "--out", str(tmp_path), "--set", "nonsense"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
