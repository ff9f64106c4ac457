"""Where each secret of the stack lives in AWS Secrets Manager: `<prefix>/<path>`.

One home for the paths, so that the vault, the clusters' secret delivery, the preview that reads
dev's vLLM key, the runbooks and the tests all name a secret the same way.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class VaultKey:
    """One secret's path below the stack's prefix, e.g. `tunnel-token/blue`."""

    path: str

    def full_name(self, prefix: str) -> str:
        return f"{prefix}/{self.path}"

    @property
    def slug(self) -> str:
        """The path as a resource-name part (`tunnel-token-blue`)."""
        return self.path.replace("/", "-")


ENDPOINT = VaultKey("endpoint")
VLLM_API_KEY = VaultKey("vllm-api-key")
HUGGING_FACE_TOKEN = VaultKey("hugging-face-token")
CLIENT_KEY_HASHES = VaultKey("gateway/client-key-hashes")
# gateway.sharedLimits: the generated password of the in-cluster stores, or the external store's URL.
LIMIT_STORE_PASSWORD = VaultKey("gateway/limit-store-password")
LIMIT_STORE_URL = VaultKey("gateway/limit-store-url")


def tunnel_token(cluster: str) -> VaultKey:
    return VaultKey(f"tunnel-token/{cluster}")


def client_key(client: str) -> VaultKey:
    return VaultKey(f"gateway/clients/{client}")


def backend_key(backend: str) -> VaultKey:
    return VaultKey(f"backends/{backend}/api-key")


def access_token(client: str) -> VaultKey:
    return VaultKey(f"access-token/{client}")
