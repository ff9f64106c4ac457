"""The components' secret outputs are Pulumi secrets (is_secret()), not just redacted."""

from __future__ import annotations

import pulumi
import pytest
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from components.secrets import SecretVault, SecretVaultArgs, VaultEntry, keys
from components.tunnel import InferenceTunnel, InferenceTunnelArgs, IngressRule, OriginRequest
from offline.engine import OfflineMocks, use_fresh_event_loop


def is_secret(output: pulumi.Output) -> bool:
    return _sync_await(output.is_secret())


def resolved(output: pulumi.Output):
    return _sync_await(output.future())


@pytest.fixture
def mocked():
    from pulumi.runtime import settings

    use_fresh_event_loop()
    settings.reset_options(project="llm-edge", stack="unit", preview=False)
    pulumi.runtime.set_mocks(OfflineMocks(), project="llm-edge", stack="unit", preview=False)
    yield
    # Let the registrations the test started finish, as a program run would.
    _sync_await(wait_for_rpcs())


def make_tunnel() -> InferenceTunnel:
    return InferenceTunnel(
        "t",
        InferenceTunnelArgs(
            account_id="0" * 32,
            zone_id="z",
            tunnel_name="llm-edge-unit-blue",
            ingress=[IngressRule("llm.example.com", "http://gateway.ns.svc:8080")],
            origin_request=OriginRequest(10, 100, 90),
        ),
    )


def test_tunnel_token_is_a_secret_even_though_the_invoke_does_not_mark_it(mocked):
    tunnel = make_tunnel()
    assert is_secret(tunnel.token)
    assert resolved(tunnel.token).startswith("offline-token-")
    assert not is_secret(tunnel.tunnel_id)
    assert resolved(tunnel.cname).endswith(".cfargotunnel.com")


def test_vault_keeps_values_secret_and_exposes_only_names_and_arns(mocked):
    tunnel = make_tunnel()
    vault = SecretVault(
        "v",
        SecretVaultArgs(prefix="llm-edge/unit", recovery_window_days=7, kms_key_id=None,
                        entries={keys.tunnel_token("blue"): VaultEntry(tunnel.token, "token")}),
    )
    assert vault.names == {keys.tunnel_token("blue"): "llm-edge/unit/tunnel-token/blue"}
    assert resolved(vault.arns_by_path["tunnel-token/blue"]).startswith("arn:aws:secretsmanager:")
