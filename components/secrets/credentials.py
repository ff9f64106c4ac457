"""Credentials: the keys this stack generates or is given, and where each one may go.

Generated with pulumi-random: the vLLM API key, one key per gateway client and the password of
the in-cluster limit stores. Given as secret stack config: the Hugging Face token, external
backends' API keys and an external limit store's URL. All of them are stored in
AWS Secrets Manager (the SecretVault); a client's plaintext key stays there, for distribution,
and only its SHA-256 reaches the clusters. Every cluster gets the same keys, so clients keep
working when traffic moves from one cluster to another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.secrets import keys
from components.secrets.keys import VaultKey
from components.secrets.vault import SecretRef, SecretVault, VaultEntry
from gateway.auth import CLIENT_KEY_PREFIX


@dataclass(frozen=True)
class CredentialsArgs:
    # Names of the gateway's clients: each gets a generated key.
    clients: list[str]
    # A preview runs no vLLM and borrows the source stack's key: that secret's full name. None: generate one.
    borrowed_vllm_key_secret: str | None = None
    # Secret config values: a Hugging Face token (gated models), and backend name -> its API key.
    hugging_face_token: pulumi.Input[str] | None = None
    backend_keys: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    # gateway.sharedLimits: generate a password for in-cluster stores, or store an external store's URL.
    limit_store_password: bool = False
    limit_store_url: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class ClusterSecrets:
    """The vault references one cluster needs."""

    tunnel_token: SecretRef
    vllm_api_key: SecretRef
    hugging_face_token: SecretRef | None = None
    client_key_hashes: dict[str, SecretRef] = field(default_factory=dict)
    backend_keys: dict[str, SecretRef] = field(default_factory=dict)
    limit_store_password: SecretRef | None = None
    limit_store_url: SecretRef | None = None


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Credentials(pulumi.ComponentResource):
    vault_entries: dict[VaultKey, VaultEntry]
    client_keys: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: CredentialsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:secrets:Credentials", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.borrowed_vllm_key_secret is not None:
            vllm_key = pulumi.Output.secret(
                aws.secretsmanager.get_secret_version_output(
                    secret_id=args.borrowed_vllm_key_secret, opts=pulumi.InvokeOutputOptions(parent=self)
                ).secret_string
            )
        else:
            vllm_key = random.RandomPassword(
                f"{name}-vllm-api-key", random.RandomPasswordArgs(length=48, special=False), child
            ).result
        self.client_keys = {
            client: pulumi.Output.secret(
                random.RandomPassword(
                    f"{name}-client-{client}", random.RandomPasswordArgs(length=40, special=False), child
                ).result.apply(lambda r: CLIENT_KEY_PREFIX + r)
            )
            for client in args.clients
        }
        self._client_hashes = {n: key.apply(sha256_hex) for n, key in self.client_keys.items()}
        self._backends = sorted(args.backend_keys)
        self.vault_entries = {keys.VLLM_API_KEY: VaultEntry(vllm_key, "API key vLLM requires on /v1")}
        if args.hugging_face_token is not None:
            self.vault_entries[keys.HUGGING_FACE_TOKEN] = VaultEntry(args.hugging_face_token, "Hugging Face token for gated models")
        for backend_name, backend_key in args.backend_keys.items():
            self.vault_entries[keys.backend_key(backend_name)] = VaultEntry(backend_key, f"API key of backend {backend_name}")
        for client_name, key in self.client_keys.items():
            self.vault_entries[keys.client_key(client_name)] = VaultEntry(key, f"gateway API key of client {client_name}")
        if args.limit_store_password:
            password = random.RandomPassword(
                f"{name}-limit-store-password", random.RandomPasswordArgs(length=48, special=False), child
            ).result
            self.vault_entries[keys.LIMIT_STORE_PASSWORD] = VaultEntry(password, "password of the gateway's in-cluster limit stores")
        if args.limit_store_url is not None:
            self.vault_entries[keys.LIMIT_STORE_URL] = VaultEntry(args.limit_store_url, "URL of the gateway's shared limit store")
        if self._client_hashes:
            self.vault_entries[keys.CLIENT_KEY_HASHES] = VaultEntry(
                pulumi.Output.all(**self._client_hashes).apply(lambda h: json.dumps(dict(sorted(h.items())))),
                "SHA-256 of each gateway client key (what the clusters receive)",
            )
        self.register_outputs({})

    def cluster_secrets(self, vault: SecretVault, cluster_name: str) -> ClusterSecrets:
        return ClusterSecrets(
            tunnel_token=vault.ref(keys.tunnel_token(cluster_name)),
            vllm_api_key=vault.ref(keys.VLLM_API_KEY),
            hugging_face_token=self._ref_if_stored(vault, keys.HUGGING_FACE_TOKEN),
            client_key_hashes={
                n: vault.ref(keys.CLIENT_KEY_HASHES, property=n, value=h) for n, h in self._client_hashes.items()
            },
            backend_keys={backend: vault.ref(keys.backend_key(backend)) for backend in self._backends},
            limit_store_password=self._ref_if_stored(vault, keys.LIMIT_STORE_PASSWORD),
            limit_store_url=self._ref_if_stored(vault, keys.LIMIT_STORE_URL),
        )

    def _ref_if_stored(self, vault: SecretVault, key: VaultKey) -> SecretRef | None:
        return vault.ref(key) if key in self.vault_entries else None
