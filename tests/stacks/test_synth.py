"""`make synth`: the artefacts it writes, and the errors a user sees."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from offline.engine import ROOT


def synth(root: Path, out: Path, stack: str = "dev") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "offline", "synth", "--stack", stack, "--out", str(out)],
        cwd=root, capture_output=True, text=True, timeout=120,
    )


def copy_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns(".venv*", "out", ".git", "node_modules", "*.pyc", "bench"))
    return root


def test_synth_writes_resources_outputs_and_manifests(tmp_path):
    result = synth(ROOT, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "stack dev:" in result.stdout and "baseUrl: https://llm-dev.example.com/v1" in result.stdout
    resources = json.loads((tmp_path / "dev" / "resources.json").read_text())
    assert all(set(r) == {"type", "name", "parent", "provider", "inputs", "options"} for r in resources)
    by_name = {(r["type"], r["name"]): r for r in resources}
    version = by_name[("aws:secretsmanager/secretVersion:SecretVersion", "vault-tunnel-token-dev-value")]
    assert version["inputs"]["secretString"] == "[secret]"
    deployment = by_name[("kubernetes:apps/v1:Deployment", "dev-connector-deployment")]
    assert deployment["parent"] == "dev-connector" and deployment["provider"] == "dev"
    # The options that change what the engine does are in the render for a reviewer: vLLM is awaited
    # for its startup budget (30 min in dev) plus the pod start, not pulumi-kubernetes' 10 minutes.
    vllm = by_name[("kubernetes:apps/v1:Deployment", "dev-vllm-qwen-0-5b-deployment")]
    assert vllm["options"]["customTimeouts"] == {"create": "45m", "update": "45m"}
    assert "dev-secrets-cloudflared-token" in deployment["options"]["dependsOn"]
    text = (tmp_path / "dev" / "resources.json").read_text() + (tmp_path / "dev" / "outputs.json").read_text()
    assert "offline-token-" not in text and "AAAA" not in text
    outputs = json.loads((tmp_path / "dev" / "outputs.json").read_text())
    assert outputs["baseUrl"] == "https://llm-dev.example.com/v1"
    documents = list(yaml.safe_load_all((tmp_path / "dev" / "manifests" / "dev.yaml").read_text()))
    assert {d["kind"] for d in documents} >= {"Namespace", "Deployment", "Secret", "PodDisruptionBudget"}
    assert all(list(d)[:3] == ["apiVersion", "kind", "metadata"] for d in documents)
    manifest_text = (tmp_path / "dev" / "manifests" / "dev.yaml").read_text()
    assert "offline-token-" not in manifest_text


def test_invalid_value_in_the_stack_file_gives_one_line_per_problem_naming_the_key(tmp_path):
    root = copy_project(tmp_path)
    stack_file = root / "Pulumi.dev.yaml"
    doc = yaml.safe_load(stack_file.read_text())
    doc["config"]["llm-edge:clusters"]["dev"]["connector"]["replicas"] = 1
    stack_file.write_text(yaml.safe_dump(doc))
    result = synth(root, tmp_path / "out")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "llm-edge:clusters.dev.connector.replicas: Input should be greater than or equal to 2 (got 1)" in result.stderr
    assert not (tmp_path / "out" / "dev").exists()


def test_unknown_stack_names_the_missing_file(tmp_path):
    result = synth(ROOT, tmp_path, stack="staging")
    assert result.returncode == 2 and "Pulumi.staging.yaml" in result.stderr
