"""One engine for tests and `synth`: run the real `__main__.py` under Pulumi mocks.

The stack's `Pulumi.<stack>.yaml` (plus the defaults declared in `Pulumi.yaml`) becomes the
config; every resource registration, invoke and the stack outputs are recorded as they were
sent to the (mock) engine, secrets still marked as secrets.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import runpy
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi.runtime import mocks as pulumi_mocks

from components.config import PROJECT, config_key_references, decode_project_config, preview_number

ROOT = Path(__file__).resolve().parent.parent
OFFLINE_SECRET_PLACEHOLDER = "offline-placeholder-for-a-secure-config-value"

# Provider ids and attributes the mocks answer with. Deterministic, so that two runs of the same
# config register identical inputs (the traffic-change property depends on it).
MOCK_ZONE_ID = "0" * 31 + "1"
MOCK_ACCOUNT = "123456789012"
MOCK_REGION = "eu-west-1"


@dataclass
class Resource:
    type: str
    name: str
    urn: str
    parent_urn: str | None
    provider_urn: str | None
    inputs: dict[str, Any]
    custom: bool
    # Resource options that change what the engine does (see `_recorded_options`).
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_provider(self) -> bool:
        return self.type.startswith("pulumi:providers:")


@dataclass
class StackRun:
    stack: str
    config: dict[str, Any]
    resources: list[Resource] = field(default_factory=list)
    invokes: list[tuple[str, dict]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def by_urn(self) -> dict[str, Resource]:
        return {r.urn: r for r in self.resources}

    def name_of(self, urn: str | None) -> str | None:
        if not urn:
            return None
        return urn.split("::")[-1]

    def of_type(self, type_token: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str) -> Resource:
        matches = [r for r in self.resources if r.type == type_token and r.name == name]
        if len(matches) != 1:
            known = sorted(r.name for r in self.of_type(type_token))
            raise KeyError(f"{type_token} {name!r}: {len(matches)} registered (known: {known})")
        return matches[0]

    def children_of(self, component: Resource) -> list[Resource]:
        """Every resource below a component, however deep."""
        parents = {r.urn: r.parent_urn for r in self.resources}
        result = []
        for r in self.resources:
            up = r.parent_urn
            while up is not None:
                if up == component.urn:
                    result.append(r)
                    break
                up = parents.get(up)
        return result


def _stable_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def _mock_state(args) -> dict[str, Any]:
    """What a provider would return on create: the inputs plus the outputs programs read."""
    state = dict(args.inputs)
    token = args.typ
    if token == "random:index/randomBytes:RandomBytes":
        length = int(args.inputs.get("length", 32))
        state.update(base64="A" * (4 * ((length + 2) // 3)), hex="0" * (2 * length))
    elif token == "random:index/randomId:RandomId":
        # Derived from the keepers, as a new id follows a keeper change.
        seed = hashlib.sha256(json.dumps(args.inputs.get("keepers", {}), sort_keys=True).encode()).hexdigest()
        state.update(hex=seed[: 2 * int(args.inputs.get("byteLength", 4))])
    elif token == "random:index/randomPassword:RandomPassword":
        state["result"] = "p" * int(args.inputs.get("length", 32))
    elif token == "aws:secretsmanager/secretVersion:SecretVersion":
        # AWS gives every new value a new VersionId: here one derived from the value.
        value = json.dumps([args.inputs.get("secretString"), args.inputs.get("secretBinary")], default=str)
        state["versionId"] = str(uuid.UUID(hashlib.sha256(value.encode()).hexdigest()[:32]))
    elif token == "aws:secretsmanager/secret:Secret":
        state["arn"] = f"arn:aws:secretsmanager:{MOCK_REGION}:{MOCK_ACCOUNT}:secret:{args.inputs['name']}-{_stable_id(args.name)[:6]}"
    elif token == "aws:iam/role:Role":
        state["arn"] = f"arn:aws:iam::{MOCK_ACCOUNT}:role/{args.inputs.get('name', args.name)}"
    elif token == "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken":
        state.update(clientId=f"{_stable_id(args.name)}.access", clientSecret="s" * 64)
    return state


class OfflineMocks(pulumi_mocks.Mocks):
    """Ids and invoke results, as a provider would return them."""

    def new_resource(self, args):
        return _stable_id(f"{args.typ}::{args.name}"), _mock_state(args)

    def call(self, args):
        if args.token == "cloudflare:index/getZone:getZone":
            name = (args.args.get("filter") or {}).get("name", "example.com")
            return {"id": MOCK_ZONE_ID, "zoneId": MOCK_ZONE_ID, "name": name}
        if args.token == "cloudflare:index/getZeroTrustTunnelCloudflaredToken:getZeroTrustTunnelCloudflaredToken":
            return {"token": f"offline-token-{args.args.get('tunnelId')}", **args.args}
        if args.token == "aws:secretsmanager/getSecretVersion:getSecretVersion":
            secret_id = args.args["secretId"]
            return {"secretId": secret_id, "secretString": f"offline-secret-of-{secret_id}", "arn": secret_id}
        raise NotImplementedError(f"the offline engine has no answer for invoke {args.token}")


def _record_monitor(run: StackRun):
    """A MockMonitor that also records parent, provider, raw inputs and stack outputs."""
    from pulumi.runtime import mocks, rpc

    lock = threading.Lock()

    class RecordingMonitor(mocks.MockMonitor):
        def RegisterResource(self, request):
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                inputs = _integral_numbers(rpc.deserialize_properties(request.object, keep_unknowns=True))
                resource = Resource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent_urn=request.parent or None,
                    # A provider reference is `<urn>::<id>`.
                    provider_urn=request.provider.rsplit("::", 1)[0] if request.provider else None,
                    inputs=inputs,
                    custom=bool(request.custom),
                    options=_recorded_options(request),
                )
                with lock:
                    run.resources.append(resource)
            return response

        def RegisterResourceOutputs(self, request):
            if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
                with lock:
                    run.outputs = _integral_numbers(rpc.deserialize_properties(request.outputs, keep_unknowns=True))
            return super().RegisterResourceOutputs(request)

        def Invoke(self, request):
            with lock:
                run.invokes.append((request.tok, rpc.deserialize_properties(request.args)))
            return super().Invoke(request)

    return RecordingMonitor(OfflineMocks())


def _recorded_options(request) -> dict[str, Any]:
    """The options of one registration that change engine behaviour, only where they are set.

    A reviewer reads them in `resources.json` (a protected zone, an await longer than the
    default, fields the program no longer manages); the URN snapshot test reads the aliases.
    """
    options: dict[str, Any] = {}
    if request.HasField("protect") and request.protect:
        options["protect"] = True
    if request.deleteBeforeReplaceDefined or request.deleteBeforeReplace:
        options["deleteBeforeReplace"] = request.deleteBeforeReplace
    if request.retainOnDelete:
        options["retainOnDelete"] = True
    for name in ("ignoreChanges", "replaceOnChanges"):
        values = list(getattr(request, name))
        if values:
            options[name] = values
    # Explicit `depends_on` only: what the inputs reference is a dependency anyway.
    from_inputs = {urn for deps in request.propertyDependencies.values() for urn in deps.urns}
    explicit = sorted(urn.split("::")[-1] for urn in set(request.dependencies) - from_inputs)
    if explicit:
        options["dependsOn"] = explicit
    timeouts = {k: v for k in ("create", "update", "delete") if (v := getattr(request.customTimeouts, k))}
    if timeouts:
        options["customTimeouts"] = timeouts
    if request.importId:
        options["import"] = request.importId
    # Renames and moves only: the provider SDKs add type aliases of their own to many resources.
    aliases = [
        {k: v for k, v in (("urn", a.urn), ("name", a.spec.name), ("type", a.spec.type), ("parentUrn", a.spec.parentUrn)) if v}
        for a in request.aliases
    ]
    aliases = [a for a in aliases if set(a) - {"type"}]
    if aliases:
        options["aliases"] = aliases
    return options


def _integral_numbers(value: Any) -> Any:
    """The wire format carries every number as a double; give integers back their type."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_numbers(v) for v in value]
    return value


class StackFileError(FileNotFoundError):
    """A stack file the Pulumi CLI would refuse before the program runs (or none at all)."""


def stack_file(stack: str, root: Path = ROOT) -> Path:
    """`Pulumi.<stack>.yaml`; a pull-request preview `pr-<N>` without one of its own starts as a
    copy of dev's, as the pr-stack workflow makes it (the program derives the preview from the
    stack name: components/config/preview.py)."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists() and preview_number(stack) is not None:
        path = root / "Pulumi.dev.yaml"
    if not path.exists():
        raise StackFileError(f"no stack file {path.name}: create it or pick an existing stack")
    return path


def stack_file_config(stack: str, root: Path = ROOT) -> dict[str, Any]:
    """The `config:` mapping of the stack's file, as written (`secure:` values still marked)."""
    return (yaml.safe_load(stack_file(stack, root).read_text()) or {}).get("config") or {}


def load_stack_file(stack: str, root: Path = ROOT) -> tuple[dict[str, str], list[str]]:
    """Config of `Pulumi.<stack>.yaml` over the defaults of `Pulumi.yaml`, as the CLI passes it.

    `secure:` values cannot be decrypted offline: they become a placeholder marked secret.
    """
    project = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    declared = project.get("config") or {}
    stack_config = stack_file_config(stack, root)
    check_declared_config(stack, declared, stack_config)
    return config_from_mapping(
        {
            **{k: v["default"] for k, v in declared.items() if isinstance(v, dict) and "default" in v},
            **stack_config,
        }
    )


# The types a `Pulumi.yaml` declaration may give, and the YAML values that satisfy each.
_DECLARED_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "boolean": (bool,), "array": (list,)}


def check_declared_config(stack: str, declared: dict[str, Any], stack_config: dict[str, Any]) -> None:
    """The checks the Pulumi CLI makes before it runs the program, with its words.

    A key of the project's namespace declared with a type and without a default must be set by the
    stack ("Stack 'dev' is missing configuration value 'llm-edge:x'"), and a set value must have
    the declared type (pulumi/pulumi, sdk/go/common/workspace/config.go: `mergeConfig`; the schema:
    https://www.pulumi.com/docs/iac/concepts/projects/project-file/#config-options).
    """
    missing, wrong = [], []
    for key, schema in declared.items():
        if not isinstance(schema, dict) or "type" not in schema:
            continue
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        value = stack_config.get(full_key, stack_config.get(key.split(":", 1)[-1]))
        if value is None:
            if schema.get("default") is None and full_key.startswith(f"{PROJECT}:"):
                missing.append(full_key)
        elif not _has_secure(value) and not (
            isinstance(value, _DECLARED_TYPES[schema["type"]]) and not (schema["type"] == "integer" and isinstance(value, bool))
        ):
            wrong.append(f"Stack '{stack}' with configuration key '{full_key}' must be of type '{schema['type']}'")
    if missing:
        names = [f"'{k}'" for k in sorted(missing)]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        wrong.insert(0, f"Stack '{stack}' is missing configuration value{'s' if len(names) > 1 else ''} {listed}")
    if wrong:
        raise StackFileError("; ".join(wrong) + " (Pulumi.yaml declares it: set it in the stack file, or give the "
                             "declaration a default)")


def config_from_mapping(mapping: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    config, secret_keys = {}, []
    for key, value in mapping.items():
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        if _has_secure(value):
            secret_keys.append(full_key)
            value = _replace_secure(value)
        config[full_key] = value if isinstance(value, str) else json.dumps(value)
    return config, secret_keys


def _has_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return set(value) == {"secure"} or any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def _replace_secure(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return OFFLINE_SECRET_PLACEHOLDER
        return {k: _replace_secure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secure(v) for v in value]
    return value


_run_lock = threading.Lock()


def use_fresh_event_loop() -> None:
    """The Pulumi runtime schedules on the thread's current event loop; code that ran before
    (asyncio.run in the same process, e.g. other tests) may have closed or unset it."""
    asyncio.set_event_loop(asyncio.new_event_loop())


def run_program(
    stack: str, config: dict[str, str], secret_keys: Sequence[str] = (), program: Path = ROOT / "__main__.py"
) -> StackRun:
    """Run the Pulumi program under mocks and return what it registered.

    Runs are serialised: the Pulumi runtime keeps its settings in process-wide state.
    """
    import pulumi
    from pulumi.runtime import settings
    from pulumi.runtime.stack import run_in_stack
    from pulumi.runtime.sync_await import _sync_await

    if str(program.parent) not in sys.path:
        sys.path.insert(0, str(program.parent))
    run = StackRun(stack=stack, config=dict(config))
    with _run_lock:
        use_fresh_event_loop()
        settings.reset_options(project=PROJECT, stack=stack, preview=False)
        settings.SETTINGS.rpc_manager.clear()
        settings.SETTINGS.outputs.clear()
        pulumi.runtime.set_mocks(OfflineMocks(), project=PROJECT, stack=stack, preview=False, monitor=_record_monitor(run))
        pulumi.runtime.set_all_config(dict(config), list(secret_keys))
        settings.ROOT.set(None)
        def program_run() -> None:
            runpy.run_path(str(program), run_name="__main__")

        _sync_await(run_in_stack(program_run))
    return run


def with_offline_secrets(config: dict[str, str], secret_keys: list[str]) -> tuple[dict[str, str], list[str]]:
    """Secret keys named by a `...ConfigKey` setting but set only on deploying machines
    (`pulumi config set --secret`) get a placeholder, so that a stack renders offline."""

    for key in set(config_key_references(decode_project_config(config))):
        full_key = f"{PROJECT}:{key}"
        if full_key not in config:
            config = {**config, full_key: OFFLINE_SECRET_PLACEHOLDER}
            secret_keys = sorted(set(secret_keys) | {full_key})
    return config, secret_keys


def stack_config(stack: str, overrides: dict[str, Any] | None = None, root: Path = ROOT) -> tuple[dict[str, str], list[str]]:
    """The config the CLI would pass for `Pulumi.<stack>.yaml`, optionally with whole top-level keys replaced."""
    config, secret_keys = load_stack_file(stack, root)
    if overrides:
        extra, extra_secrets = config_from_mapping(overrides)
        config.update(extra)
        secret_keys = sorted(set(secret_keys) | set(extra_secrets))
    return config, secret_keys


def run_stack(stack: str, overrides: dict[str, Any] | None = None, root: Path = ROOT) -> StackRun:
    """Run the program with `Pulumi.<stack>.yaml`, optionally replacing whole top-level keys."""
    config, secret_keys = with_offline_secrets(*stack_config(stack, overrides, root))
    return run_program(stack, config, secret_keys, root / "__main__.py")
