"""Config of AWS Secrets Manager (the system of record) and of how secrets reach the clusters."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from components.config.base import Model


class SecretsSettings(Model):
    """AWS Secrets Manager (system of record) and how secrets reach the clusters."""

    delivery: Literal["direct", "external-secrets"] = "direct"
    # 0 deletes at once; otherwise AWS allows 7 to 30 days.
    recovery_window_days: int = 30
    # A customer-managed key, as an ARN (the reader role's policy names it).
    kms_key_id: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$")] | None = None
    # Name prefix of every secret of this stack; `{stack}` is replaced by the stack name.
    # Secret names take at most 512 characters ("NameType ... max 512", Secrets Manager API); the
    # longest path below the prefix is about 80 (gateway/clients/<client>).
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9/_+=.@{}-]+$", max_length=400)] = "llm-edge/{stack}"
    # Needed by external-secrets delivery (the SecretStore names the region).
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")] | None = None
    refresh_interval: Annotated[str, Field(pattern=r"^[0-9]+[smh]$")] = "1h"

    @field_validator("recovery_window_days")
    @classmethod
    def _aws_window(cls, days: int) -> int:
        if days != 0 and not 7 <= days <= 30:
            raise ValueError("must be 0 (delete at once) or between 7 and 30 days")
        return days

    def prefix_for(self, stack: str) -> str:
        """The secret name prefix of `stack` (this one, or the stack a preview borrows from)."""
        return self.prefix.replace("{stack}", stack)
