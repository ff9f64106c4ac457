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
from offline.render import kubernetes_objects, manifests_yaml, plan_summary, redact, resource_records


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
    args = parser.parse_args(argv)
    return synth(args.stack, args.out, args.assignments)


if __name__ == "__main__":
    sys.exit(main())
