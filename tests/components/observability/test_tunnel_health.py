"""Cloudflare's tunnel-health notification: one policy per tunnel, to the configured destinations."""

from __future__ import annotations

import pytest

from components.observability.tunnel_health import split_webhook_secret
from offline.engine import _stable_id
from tests.conftest import stack_run
from tests.helpers import plain, secret_marked

NOTIFICATION_POLICY = "cloudflare:index/notificationPolicy:NotificationPolicy"
NOTIFICATION_WEBHOOK = "cloudflare:index/notificationPolicyWebhooks:NotificationPolicyWebhooks"


def test_prod_notifies_email_and_webhook_of_each_tunnels_health():
    run = stack_run("prod")
    (webhook,) = run.of_type(NOTIFICATION_WEBHOOK)
    policies = {p.name: plain(p) for p in run.of_type(NOTIFICATION_POLICY)}
    assert set(policies) == {"tunnel-health-blue", "tunnel-health-green"}
    for cluster, tunnel_id in run.outputs["tunnels"].items():
        inputs = policies[f"tunnel-health-{cluster}"]
        assert inputs["alertType"] == "tunnel_health_event"
        assert inputs["filters"] == {"tunnelIds": [tunnel_id]}
        assert inputs["mechanisms"]["emails"] == [{"id": "llm-oncall@example.com"}]
        # The mock engine gives each resource the id `_stable_id("<type>::<name>")`.
        assert inputs["mechanisms"]["webhooks"] == [{"id": _stable_id(f"{webhook.type}::{webhook.name}")}]
    assert secret_marked(webhook.inputs["url"]), "the webhook URL (it may carry a token) must stay secret"


def test_dev_notifies_by_email_only():
    run = stack_run("dev")
    (policy,) = run.of_type(NOTIFICATION_POLICY)
    assert plain(policy)["mechanisms"] == {"emails": [{"id": "llm-dev-alerts@example.com"}]}
    assert plain(policy)["filters"] == {"tunnelIds": [run.outputs["tunnels"]["dev"]]}
    assert not run.of_type(NOTIFICATION_WEBHOOK)


@pytest.mark.parametrize("url,secret,expected", [
    ("https://hooks.slack.com/services/T01/B02/abcSECRET", None, ("https://hooks.slack.com/services/T01/B02", "abcSECRET")),
    ("https://discord.com/api/webhooks/123/tokenXYZ", None, ("https://discord.com/api/webhooks/123", "tokenXYZ")),
    ("https://alerts.example.com/cloudflare", None, ("https://alerts.example.com/cloudflare", None)),
    ("https://alerts.example.com/cloudflare", "s3cret", ("https://alerts.example.com/cloudflare", "s3cret")),
    ("https://chat.googleapis.com/v1/spaces/AAA/messages", "tok", ("https://chat.googleapis.com/v1/spaces/AAA/messages", "tok")),
])
def test_chat_tokens_leave_the_url_so_cloudflare_stores_it_as_given(url, secret, expected):
    assert split_webhook_secret(url, secret) == expected


def test_a_google_chat_url_with_its_token_needs_the_token_apart():
    with pytest.raises(ValueError, match="alerts.webhookSecretConfigKey"):
        split_webhook_secret("https://chat.googleapis.com/v1/spaces/AAA/messages?key=k&token=t", None)


def test_a_slack_webhook_is_given_to_cloudflare_without_its_token():
    run = stack_run("prod", {"alertsWebhookUrl": "https://hooks.slack.com/services/T01/B02/abc"})
    (webhook,) = run.of_type(NOTIFICATION_WEBHOOK)
    assert secret_marked(webhook.inputs["url"]) and secret_marked(webhook.inputs["secret"])
    assert (plain(webhook)["url"], plain(webhook)["secret"]) == ("https://hooks.slack.com/services/T01/B02", "abc")
