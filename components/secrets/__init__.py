"""Area `secrets` (type tokens `llm-edge:secrets:*`): AWS Secrets Manager as the system of record,
the keys the stack generates, and their delivery into each cluster."""

from components.secrets import keys
from components.secrets.credentials import ClusterSecrets, Credentials, CredentialsArgs, sha256_hex
from components.secrets.delivery import SecretDelivery, SecretDeliveryArgs
from components.secrets.keys import VaultKey
from components.secrets.vault import SecretRef, SecretVault, SecretVaultArgs, VaultEntry

__all__ = [
    "ClusterSecrets", "Credentials", "CredentialsArgs", "SecretDelivery", "SecretDeliveryArgs", "SecretRef",
    "SecretVault", "SecretVaultArgs", "VaultEntry", "VaultKey", "keys", "sha256_hex",
]
