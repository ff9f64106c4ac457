"""Client keys: generated here, stored only as SHA-256 hashes, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    # 256 bits of randomness; the prefix lets secret scanners recognise a leaked key.
    return "sk-edge-" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Client:
    name: str
    key_hash: bytes  # hex digest as ASCII bytes, ready for hmac.compare_digest
    models: frozenset[str]  # "*" means every configured model
    rpm: int | None
    tpm: int | None

    def may_use(self, model: str) -> bool:
        return "*" in self.models or model in self.models


class KeyRing:
    def __init__(self, clients: list[Client]):
        self._clients = clients

    def authenticate(self, authorization: str | None) -> Client | None:
        """The client whose key is in `Authorization: Bearer <key>`, or None.

        Every configured hash is compared (no early exit), each with hmac.compare_digest, so the
        time taken does not tell an attacker which hash, or which prefix of one, came close.
        """
        if not authorization or not authorization[:7].lower() == "bearer ":
            return None
        presented = hash_key(authorization[7:].strip()).encode("ascii")
        found = None
        for client in self._clients:
            if hmac.compare_digest(presented, client.key_hash):
                found = client
        return found
