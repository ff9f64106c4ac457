"""Pulumi.yaml stays loadable by the real CLI and documents every stack config key."""

from __future__ import annotations

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
