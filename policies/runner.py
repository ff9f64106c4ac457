"""`python -m policies.runner --stack prod`: evaluate the pack in-process over a synthesized stack.

No Pulumi CLI and no credentials: the stack runs under the offline engine's mocks, each recorded
resource goes through every enabled policy exactly as CrossGuard would pass it (inputs as plain
camelCase values, secrets unwrapped), with the enforcement levels and settings of
`policies/config/<stack>.json` (previews `pr-<N>` use `preview.json`) — the same file the
workflows give `pulumi preview --policy-pack-config`. Exits 1 on a mandatory violation.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from components.config import preview_number
from policies.pack import POLICIES

CONFIG_DIR = Path(__file__).resolve().parent / "config"
LEVELS = {level.value: level for level in EnforcementLevel}


class PolicyConfigError(Exception):
    """A policy config file that the Pulumi CLI would reject too."""


@dataclass(frozen=True)
class Violation:
    rule: str
    level: EnforcementLevel
    resource: str
    message: str

    def __str__(self) -> str:
        return f"{self.level.value:9}  {self.rule}  {self.resource}: {self.message}"


@dataclass(frozen=True)
class Setting:
    level: EnforcementLevel
    config: dict[str, Any]


def config_path(stack: str) -> Path:
    name = "preview" if preview_number(stack) is not None else stack
    return CONFIG_DIR / f"{name}.json"


def load_policy_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
        raise PolicyConfigError(f"no policy config {path}: create it (known: {known}) or pass --config")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise PolicyConfigError(f"{path}: not valid JSON: {error}") from error


def settings(policies: list[Policy], raw: dict[str, Any], source: str = "policy config") -> dict[str, Setting]:
    """Each policy's level and config, as the CLI derives them: `all`, then the policy's own entry,
    schema defaults filled in and the result checked against the policy's schema."""
    by_name = {p.name: p for p in policies}
    unknown = sorted(set(raw) - set(by_name) - {"all"})
    if unknown:
        raise PolicyConfigError(f"{source}: unknown policies {', '.join(unknown)} (known: {', '.join(sorted(by_name))})")
    default = _level(raw.get("all"), source, "all") if "all" in raw else None
    result = {}
    for name, policy in by_name.items():
        entry = raw.get(name)
        level = default or policy.enforcement_level or EnforcementLevel.ADVISORY
        values: dict[str, Any] = {}
        if isinstance(entry, str):
            level = _level(entry, source, name)
        elif isinstance(entry, dict):
            values = {k: v for k, v in entry.items() if k != "enforcementLevel"}
            if "enforcementLevel" in entry:
                level = _level(entry["enforcementLevel"], source, name)
        elif entry is not None:
            raise PolicyConfigError(f"{source}: {name} must be an enforcement level or an object")
        result[name] = Setting(level, _with_defaults(policy, values, source))
    return result


def _level(value: Any, source: str, key: str) -> EnforcementLevel:
    if value not in LEVELS:
        raise PolicyConfigError(f"{source}: {key}: enforcement level {value!r} is not one of {', '.join(LEVELS)}")
    return LEVELS[value]


def _with_defaults(policy: Policy, values: dict[str, Any], source: str) -> dict[str, Any]:
    schema = policy.config_schema
    properties = schema.properties if schema else {}
    unknown = sorted(set(values) - set(properties))
    if unknown:
        raise PolicyConfigError(
            f"{source}: {policy.name} has no setting {', '.join(unknown)} (settings: {', '.join(properties) or 'none'})"
        )
    filled = {k: spec["default"] for k, spec in properties.items() if "default" in spec}
    filled.update(values)
    try:
        jsonschema.validate(filled, {"type": "object", "properties": properties, "required": (schema.required if schema else None) or []})
    except jsonschema.ValidationError as error:
        raise PolicyConfigError(f"{source}: {policy.name}: {error.message}") from error
    return filled


def evaluate(run, policy_settings: dict[str, Setting], policies: list[Policy] = POLICIES) -> list[Violation]:
    """Every violation of every enabled policy over one recorded StackRun."""
    stack = _PolicyView(run)
    violations: list[Violation] = []
    for policy in policies:
        setting = policy_settings[policy.name]
        if setting.level == EnforcementLevel.DISABLED:
            continue

        def report(message: str, urn: str | None = None, *, name: str = policy.name, level=setting.level) -> None:
            violations.append(Violation(name, level, stack.label(urn), message))

        if isinstance(policy, ResourceValidationPolicy):
            for resource in run.resources:
                args = ResourceValidationArgs(
                    resource.type, stack.plain[resource.urn], resource.urn, resource.name, stack.options(resource),
                    stack.provider_of(resource), setting.config,
                )
                def report_on_resource(message: str, _urn: str | None = None, urn: str = resource.urn) -> None:
                    report(message, urn)

                policy.validate(args, report_on_resource)
        elif isinstance(policy, StackValidationPolicy):
            policy.validate(StackValidationArgs(list(stack.resources.values()), setting.config), report)
    return violations


class _PolicyView:
    """A recorded StackRun as the policy engine hands it to rules: plain inputs, options, parents."""

    def __init__(self, run) -> None:
        from offline.render import unwrap

        self._by_urn = run.by_urn()
        self.plain = {r.urn: unwrap(r.inputs) for r in run.resources}
        self.resources = {
            r.urn: PolicyResource(r.type, self.plain[r.urn], r.urn, r.name, self.options(r), self.provider_of(r), None, [], {})
            for r in run.resources
        }
        for urn, resource in self.resources.items():
            resource.parent = self.resources.get(self._by_urn[urn].parent_urn)

    def label(self, urn: str | None) -> str:
        resource = self._by_urn.get(urn) if urn else None
        return f"{resource.type} {resource.name}" if resource else "stack"

    def provider_of(self, resource) -> PolicyProviderResource | None:
        provider = self._by_urn.get(resource.provider_urn) if resource.provider_urn else None
        if provider is None:
            return None
        return PolicyProviderResource(provider.type, self.plain[provider.urn], provider.urn, provider.name)

    @staticmethod
    def options(resource) -> PolicyResourceOptions:
        recorded = resource.options
        timeouts = recorded.get("customTimeouts", {})
        return PolicyResourceOptions(
            recorded.get("protect", False),
            recorded.get("ignoreChanges", []),
            recorded.get("deleteBeforeReplace"),
            [alias.get("urn", "") for alias in recorded.get("aliases", [])],
            PolicyCustomTimeouts(*(_seconds(timeouts.get(op, "")) for op in ("create", "update", "delete"))),
            [],
            resource.parent_urn,
        )


def _seconds(duration: str) -> float:
    """A Go duration as resource options carry it (`10m`, `1h30m`, `45s`) in seconds; 0 when unset."""
    units = {"h": 3600, "m": 60, "s": 1}
    return float(sum(int(amount) * units[unit] for amount, unit in re.findall(r"([0-9]+)([hms])", duration)))


def synthesize(stack: str, stack_file: Path | None = None):
    """Run the stack under mocks: `Pulumi.<stack>.yaml`, or any stack file (e.g. a test fixture)."""
    from offline.engine import config_from_mapping, run_program, run_stack

    if stack_file is None:
        return run_stack(stack)
    document = yaml.safe_load(stack_file.read_text()) or {}
    config, secret_keys = config_from_mapping(document.get("config") or {})
    return run_program(stack, config, secret_keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m policies.runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--config", type=Path, help="policy config JSON (default: policies/config/<stack>.json)")
    parser.add_argument("--stack-file", type=Path, help="stack config YAML to render instead of Pulumi.<stack>.yaml")
    args = parser.parse_args(argv)
    from components.config import ConfigError

    path = args.config or config_path(args.stack)
    try:
        policy_settings = settings(POLICIES, load_policy_config(path), str(path))
        run = synthesize(args.stack, args.stack_file)
    except (PolicyConfigError, ConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    violations = evaluate(run, policy_settings)
    for violation in violations:
        print(violation)
    mandatory = [v for v in violations if v.level == EnforcementLevel.MANDATORY]
    enabled = sum(1 for s in policy_settings.values() if s.level != EnforcementLevel.DISABLED)
    print(
        f"stack {args.stack}: {len(run.resources)} resources, {enabled} policies ({path.name}): "
        f"{len(mandatory)} mandatory and {len(violations) - len(mandatory)} advisory violations"
    )
    return 1 if mandatory else 0


if __name__ == "__main__":
    sys.exit(main())
