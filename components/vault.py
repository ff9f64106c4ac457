"""SecretVault: AWS Secrets Manager, the system of record for this stack's secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class VaultEntry:
    value: pulumi.Input[str]
    description: str


@dataclass(frozen=True)
class SecretVaultArgs:
    # Full names are `<prefix>/<entry key>`, e.g. `llm-edge/prod/tunnel-token/blue`.
    prefix: str
    recovery_window_days: int
    kms_key_id: Optional[str]
    entries: dict[str, VaultEntry]
    tags: dict[str, str] = field(default_factory=dict)


class SecretVault(pulumi.ComponentResource):
    names: dict[str, str]
    arns: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: SecretVaultArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:secrets:SecretVault", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.names, self.arns = {}, {}
        for key, entry in args.entries.items():
            slug = key.replace("/", "-")
            full_name = f"{args.prefix}/{key}"
            secret = aws.secretsmanager.Secret(
                f"{name}-{slug}",
                aws.secretsmanager.SecretArgs(
                    name=full_name,
                    description=entry.description,
                    kms_key_id=args.kms_key_id,
                    recovery_window_in_days=args.recovery_window_days,
                    tags=args.tags,
                ),
                child,
            )
            aws.secretsmanager.SecretVersion(
                f"{name}-{slug}-value",
                aws.secretsmanager.SecretVersionArgs(
                    secret_id=secret.id, secret_string=pulumi.Output.secret(entry.value)
                ),
                child,
            )
            self.names[key] = full_name
            self.arns[key] = secret.arn
        self.register_outputs({"arns": self.arns})
