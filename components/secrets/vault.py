"""SecretVault: AWS Secrets Manager, the system of record for this stack's secrets."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.secrets.keys import VaultKey


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
    property: str | None = None
    # The AWS version holding the value: Secrets Manager gives every new value a new VersionId
    # ("When you update the secret value, Secrets Manager creates a new version":
    # https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html).
    version: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class SecretVaultArgs:
    # Full names are `<prefix>/<key path>`, e.g. `llm-edge/prod/tunnel-token/blue`.
    prefix: str
    recovery_window_days: int
    kms_key_id: str | None
    entries: dict[VaultKey, VaultEntry]
    tags: dict[str, str] = field(default_factory=dict)


class SecretVault(pulumi.ComponentResource):
    names: dict[VaultKey, str]
    arns: dict[VaultKey, pulumi.Output[str]]

    def __init__(self, name: str, args: SecretVaultArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:secrets:SecretVault", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.names, self.arns, self._values, self._versions = {}, {}, {}, {}
        for key, entry in args.entries.items():
            full_name = key.full_name(args.prefix)
            secret = aws.secretsmanager.Secret(
                f"{name}-{key.slug}",
                aws.secretsmanager.SecretArgs(
                    name=full_name,
                    description=entry.description,
                    kms_key_id=args.kms_key_id,
                    recovery_window_in_days=args.recovery_window_days,
                    tags=args.tags,
                ),
                child,
            )
            version = aws.secretsmanager.SecretVersion(
                f"{name}-{key.slug}-value",
                aws.secretsmanager.SecretVersionArgs(
                    secret_id=secret.id, secret_string=pulumi.Output.secret(entry.value)
                ),
                child,
            )
            self.names[key] = full_name
            self.arns[key] = secret.arn
            self._values[key] = entry.value
            self._versions[key] = version.version_id
        self.register_outputs({"arns": self.arns_by_path})

    @property
    def arns_by_path(self) -> dict[str, pulumi.Output[str]]:
        """ARNs by secret path (`tunnel-token/blue`), as the stack exports them."""
        return {key.path: arn for key, arn in self.arns.items()}

    def ref(self, key: VaultKey, property: str | None = None, value: pulumi.Input[str] | None = None) -> SecretRef:
        """A reference to an entry; for a JSON entry, to one property of it (with that property's value)."""
        return SecretRef(self.names[key], self.arns[key], self._values[key] if value is None else value, property,
                         self._versions[key])
