"""`python -m offline synth [--stack dev] [--out out] [--set KEY=VALUE ...]`: render a stack with no
credentials and no network. `--set` changes one config value for this render only, with the path
syntax of `pulumi config set --path` (e.g. `--set traffic.active=green`); the stack file is untouched."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from components.config import ConfigError
from offline.engine import ROOT, StackFileError, run_stack
from offline.overrides import OverrideError, stack_overrides
from offline.preflight import render, report
from offline.render import kubernetes_objects, manifests_yaml, plan_summary, redact, resource_records
from offline.secret_config import secret_config_keys, set_from_env


def synth(stack: str, out_dir: Path, assignments: Sequence[str] = ()) -> int:
    try:
        run = run_stack(stack, stack_overrides(stack, list(assignments)) if assignments else None)
    except (ConfigError, StackFileError, OverrideError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    target = out_dir / stack
    (target / "manifests").mkdir(parents=True, exist_ok=True)
    for stale in (target / "manifests").glob("*.yaml"):
        stale.unlink()
    (target / "resources.json").write_text(json.dumps(resource_records(run), indent=2) + "\n")
    (target / "outputs.json").write_text(json.dumps(redact(run.outputs), indent=2, sort_keys=True) + "\n")
    for cluster, objects in kubernetes_objects(run).items():
        (target / "manifests" / f"{cluster}.yaml").write_text(manifests_yaml(objects))
    print(plan_summary(run))
    if assignments:
        print("config overridden for this render only: " + " ".join(assignments))
    print(f"wrote {target.relative_to(Path.cwd()) if target.is_relative_to(Path.cwd()) else target}/")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    synth_cmd = commands.add_parser("synth", help="render a stack into out/<stack>/")
    synth_cmd.add_argument("--stack", default="dev")
    synth_cmd.add_argument("--out", type=Path, default=ROOT / "out")
    synth_cmd.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
        help="override one llm-edge config value for this render (path syntax of pulumi config set --path); repeatable",
    )
    secrets_cmd = commands.add_parser(
        "secret-config", help="list the secret config keys a stack needs (and set them from the environment, in CI)")
    secrets_cmd.add_argument("--stack", default="dev")
    secrets_cmd.add_argument("--set-from-env", action="store_true",
                             help="pulumi config set --secret each key the stack file lacks, from $<KEY_IN_UPPER_SNAKE_CASE>")
    preflight_cmd = commands.add_parser("preflight", help="what must exist before pulumi up (exit 1 when something is missing)")
    preflight_cmd.add_argument("--stack", default="dev")
    preflight_cmd.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                               help="as for synth")
    args = parser.parse_args(argv)
    if args.command == "preflight":
        return preflight(args.stack, args.assignments)
    if args.command == "secret-config":
        return secret_config(args.stack, args.set_from_env)
    return synth(args.stack, args.out, args.assignments)


def preflight(stack: str, assignments: Sequence[str] = ()) -> int:
    try:
        overrides = stack_overrides(stack, list(assignments)) if assignments else None
        run = run_stack(stack, overrides)
        keys = secret_config_keys(stack, overrides)
    except (ConfigError, StackFileError, OverrideError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sections = report(run, keys)
    print(f"stack {stack}: before pulumi up" + (f" (config overridden: {' '.join(assignments)})" if assignments else ""))
    print(render(sections))
    missing = [line for lines in sections.values() for line in lines if line.missing]
    if missing:
        print(f"{len(missing)} missing: see the lines marked MISSING", file=sys.stderr)
    return 1 if missing else 0


def secret_config(stack: str, apply: bool) -> int:
    try:
        keys = secret_config_keys(stack)
    except StackFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for key in keys:
        print(f"{key.key}: {'in the stack file' if key.in_stack_file else 'from $' + key.env}")
    problems = set_from_env(stack, keys) if apply else []
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
