"""Pulumi.yaml stays loadable by the real CLI and documents every stack config key."""

from __future__ import annotations

import re

import pytest
import yaml

from components.config import TOP_LEVEL_KEYS
from offline.engine import ROOT

# The project file schema of the Pulumi CLI allows only these config types (objects are not
# declarable); an `object` declaration makes every `pulumi` command fail to load the project.
PULUMI_CONFIG_TYPES = {"string", "integer", "boolean", "array"}


def test_declared_config_types_are_ones_pulumi_accepts():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "llm-edge" and project["runtime"]["name"] == "python"
    for key, spec in project["config"].items():
        assert spec["type"] in PULUMI_CONFIG_TYPES, f"{key}: type {spec['type']!r}"
        assert spec.get("description"), f"{key}: no description"
        if spec["type"] == "array":
            assert spec["items"]["type"] in PULUMI_CONFIG_TYPES, f"{key}: items"
        assert key.removeprefix("llm-edge:") in TOP_LEVEL_KEYS


def test_every_stack_config_key_is_documented_in_the_project_file():
    text = (ROOT / "Pulumi.yaml").read_text()
    missing = [key for key in TOP_LEVEL_KEYS if f"llm-edge:{key}:" not in text]
    assert missing == []


def test_every_stack_file_passes_the_clis_checks_of_declared_keys():
    # pr-<N> stacks start as a copy of dev's file (the pr-stack workflow), so dev covers them.
    from offline.engine import check_declared_config, stack_file_config

    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    for stack in [p.name.split(".")[1] for p in sorted(ROOT.glob("Pulumi.*.yaml"))] + ["pr-123"]:
        check_declared_config(stack, declared, stack_file_config(stack))


def test_a_declared_key_without_default_that_a_stack_leaves_unset_is_refused_as_the_cli_refuses_it():
    from offline.engine import StackFileError, check_declared_config

    declared = {"llm-edge:tokenKey": {"type": "string"}, "llm-edge:limit": {"type": "integer"},
                "llm-edge:optional": {"type": "string", "default": ""}}
    with pytest.raises(StackFileError, match=re.escape("Stack 'dev' is missing configuration value 'llm-edge:tokenKey'")):
        check_declared_config("dev", declared, {"llm-edge:limit": 3})
    with pytest.raises(StackFileError, match=re.escape("configuration values 'llm-edge:limit' and 'llm-edge:tokenKey'")):
        check_declared_config("dev", declared, {})
    with pytest.raises(StackFileError, match="'llm-edge:limit' must be of type 'integer'"):
        check_declared_config("dev", declared, {"llm-edge:tokenKey": "x", "llm-edge:limit": "three"})
    check_declared_config("dev", declared, {"llm-edge:tokenKey": {"secure": "v1:AAAA"}, "llm-edge:limit": 3})
