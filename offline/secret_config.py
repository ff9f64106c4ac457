"""The secret config keys a stack needs, and setting them from the environment in CI.

Settings ending in `ConfigKey` (a kubeconfig, the Hugging Face token, a backend's API key, the
alerts webhook) name another config key that holds the secret itself. On a laptop it is set once
with `pulumi config set --secret`; the workflows check out a stack file without it, so each run
sets it from a repository secret whose name is the key in upper snake case (`huggingFaceToken` ->
`HUGGING_FACE_TOKEN`): `python -m offline secret-config --stack prod --set-from-env`.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import PROJECT, config_key_references, decode_project_config
from offline.engine import ROOT, stack_config


@dataclass(frozen=True)
class SecretConfigKey:
    key: str
    # The environment variable (and repository secret) CI reads it from.
    env: str
    in_stack_file: bool


def env_name(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).replace("-", "_").upper()


def secret_config_keys(stack: str, overrides: dict[str, Any] | None = None, root: Path = ROOT) -> list[SecretConfigKey]:
    """Every secret config key the stack's settings name, and whether its file already holds it."""
    config, _ = stack_config(stack, overrides, root)
    names = dict.fromkeys(config_key_references(decode_project_config(config)))
    return [SecretConfigKey(key, env_name(key), f"{PROJECT}:{key}" in config) for key in names]


def set_from_env(stack: str, keys: list[SecretConfigKey], environ: dict[str, str] | None = None) -> list[str]:
    """Run `pulumi config set --secret` for each key the stack file lacks; the problems, if any."""
    environ = dict(os.environ) if environ is None else environ
    missing = [k for k in keys if not k.in_stack_file and not environ.get(k.env)]
    if missing:
        return [f"{k.key}: the environment variable {k.env} is empty: add the repository secret {k.env} "
                f"and pass it to this step (docs/previews.md#repository-secrets)" for k in missing]
    for k in keys:
        if not k.in_stack_file:
            # The value goes through stdin, never the command line (process lists show arguments).
            subprocess.run(["pulumi", "config", "set", "--secret", "--stack", stack, k.key],
                           input=environ[k.env], text=True, check=True)
    return []
