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
class SecretRef:
    """One stored secret: where it lives in AWS, and its value for direct delivery."""

    aws_name: str
    aws_arn: pulumi.Input[str]
    value: pulumi.Input[str]
    # For a JSON secret: the property holding this value.
    property: Optional[str] = None


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
        self.names, self.arns, self._values = {}, {}, {}
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
            self._values[key] = entry.value
        self.register_outputs({"arns": self.arns})

    def ref(self, key: str, property: Optional[str] = None, value: Optional[pulumi.Input[str]] = None) -> SecretRef:
        """A reference to an entry; for a JSON entry, to one property of it (with that property's value)."""
        return SecretRef(self.names[key], self.arns[key], self._values[key] if value is None else value, property)
