"""Credentials: the keys this stack generates or is given, and where each one may go.

Generated with pulumi-random: the vLLM API key and one key per gateway client. Given as secret
stack config: the Hugging Face token and external backends' API keys. All of them are stored in
AWS Secrets Manager (the SecretVault); a client's plaintext key stays there, for distribution,
and only its SHA-256 reaches the clusters. Every cluster gets the same keys, so clients keep
working when traffic moves from one cluster to another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.config import StackConfig
from components.vault import SecretRef, SecretVault, VaultEntry

CLIENT_KEY_PREFIX = "sk-llmedge-"
CLIENT_HASHES_ENTRY = "gateway/client-key-hashes"


@dataclass(frozen=True)
class ClusterSecrets:
    """The vault references one cluster needs."""

    tunnel_token: SecretRef
    vllm_api_key: SecretRef
    hugging_face_token: Optional[SecretRef] = None
    client_key_hashes: dict[str, SecretRef] = field(default_factory=dict)
    backend_keys: dict[str, SecretRef] = field(default_factory=dict)


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Credentials(pulumi.ComponentResource):
    vault_entries: dict[str, VaultEntry]
    client_keys: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:secrets:Credentials", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stack_config = pulumi.Config()
        if config.is_preview:
            # A preview runs no vLLM: its gateway uses the source stack's models, so their key.
            source = config.preview.source_stack
            vllm_key = pulumi.Output.secret(
                aws.secretsmanager.get_secret_version_output(
                    secret_id=f"{config.secrets.prefix.replace('{stack}', source)}/vllm-api-key",
                    opts=pulumi.InvokeOutputOptions(parent=self),
                ).secret_string
            )
        else:
            vllm_key = random.RandomPassword(
                f"{name}-vllm-api-key", random.RandomPasswordArgs(length=48, special=False), child
            ).result
        self.client_keys = {
            client.name: pulumi.Output.secret(
                random.RandomPassword(
                    f"{name}-client-{client.name}", random.RandomPasswordArgs(length=40, special=False), child
                ).result.apply(lambda r: CLIENT_KEY_PREFIX + r)
            )
            for client in config.gateway.clients
        }
        self._client_hashes = {n: key.apply(sha256_hex) for n, key in self.client_keys.items()}
        self.vault_entries = {"vllm-api-key": VaultEntry(vllm_key, "API key vLLM requires on /v1")}
        if config.hugging_face_token_config_key and not config.is_preview:
            token = stack_config.require_secret(config.hugging_face_token_config_key)
            self.vault_entries["hugging-face-token"] = VaultEntry(token, "Hugging Face token for gated models")
        for backend_name, backend in config.backends.items():
            if backend.api_key_config_key:
                self.vault_entries[f"backends/{backend_name}/api-key"] = VaultEntry(
                    stack_config.require_secret(backend.api_key_config_key), f"API key of backend {backend_name}"
                )
        for client_name, key in self.client_keys.items():
            self.vault_entries[f"gateway/clients/{client_name}"] = VaultEntry(key, f"gateway API key of client {client_name}")
        if self._client_hashes:
            self.vault_entries[CLIENT_HASHES_ENTRY] = VaultEntry(
                pulumi.Output.all(**self._client_hashes).apply(lambda h: json.dumps(dict(sorted(h.items())))),
                "SHA-256 of each gateway client key (what the clusters receive)",
            )
        self.register_outputs({})

    def cluster_secrets(self, vault: SecretVault, cluster_name: str) -> ClusterSecrets:
        entries = self.vault_entries
        return ClusterSecrets(
            tunnel_token=vault.ref(f"tunnel-token/{cluster_name}"),
            vllm_api_key=vault.ref("vllm-api-key"),
            hugging_face_token=vault.ref("hugging-face-token") if "hugging-face-token" in entries else None,
            client_key_hashes={
                n: vault.ref(CLIENT_HASHES_ENTRY, property=n, value=h) for n, h in self._client_hashes.items()
            },
            backend_keys={
                key.split("/")[1]: vault.ref(key) for key in entries if key.startswith("backends/")
            },
        )
