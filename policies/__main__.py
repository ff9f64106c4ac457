"""The policy pack, as `pulumi preview --policy-pack policies --policy-pack-config policies/config/<stack>.json` runs it.

Builds the pack only: `PolicyPack` starts the analyzer server and blocks. The rules live in the
modules beside this file; `python -m policies.runner` evaluates them offline.
"""

import sys
from pathlib import Path

# Pulumi runs this directory as a script; the rules are the `policies` package it contains.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies.pack import PACK_NAME, POLICIES  # noqa: E402

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
