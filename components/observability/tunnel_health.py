"""TunnelHealthNotification: Cloudflare tells people when this stack's tunnels change health.

Cloudflare watches the tunnels from its side, so this notification still arrives when a whole
cluster (and its Prometheus) is gone. One account-level policy on `tunnel_health_event` per
tunnel, filtered to its id, sent to e-mail addresses and/or one webhook destination. A policy per
tunnel (not one listing them all) makes adding or removing a cluster a pure addition or deletion:
no running policy is updated.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi
import pulumi_cloudflare as cloudflare

ALERT_TYPE = "tunnel_health_event"


@dataclass(frozen=True)
class TunnelHealthNotificationArgs:
    account_id: str
    # Names policies and webhook in Cloudflare's dashboard and in every notification (`llm-edge <stack>`).
    display_name: str
    # Cluster name -> its tunnel's id.
    tunnel_ids: dict[str, pulumi.Input[str]]
    emails: list[str]
    # The webhook's URL (a secret: Slack-style URLs carry their token), or None for e-mail only.
    webhook_url: pulumi.Input[str] | None = None
    # Given apart from the URL: sent as `cf-webhook-auth` to a generic webhook; for a chat service,
    # the token its URL would otherwise carry.
    webhook_secret: pulumi.Input[str] | None = None


# Chat services whose webhook URL ends in its token: Cloudflare moves that token into `secret` and
# stores a different URL than the one given, so every `pulumi up` would show a diff. "You can choose
# to remove the secret from the URL and explicitly set the value of `secret` ... useful when defining
# your webhook infrastructure as code" (https://developers.cloudflare.com/notifications/get-started/configure-webhooks/).
TOKEN_IN_LAST_SEGMENT = ("hooks.slack.com", "discord.com", "discordapp.com")
TOKEN_IN_QUERY = ("chat.googleapis.com",)


def split_webhook_secret(url: str, secret: str | None) -> tuple[str, str | None]:
    """The URL and secret to give Cloudflare so that it stores the URL as given."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if secret is not None:
        return url, secret
    if host in TOKEN_IN_LAST_SEGMENT:
        base, _, token = url.rstrip("/").rpartition("/")
        return base, token
    if host in TOKEN_IN_QUERY:
        raise ValueError(
            "a Google Chat webhook URL carries its token, which Cloudflare moves out of the URL: give the token in "
            "the secret config key named by llm-edge:alerts.webhookSecretConfigKey and the URL without it"
        )
    return url, None


class TunnelHealthNotification(pulumi.ComponentResource):
    policies: dict[str, cloudflare.NotificationPolicy]
    webhook: cloudflare.NotificationPolicyWebhooks | None

    def __init__(self, name: str, args: TunnelHealthNotificationArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:observability:TunnelHealthNotification", name, None, opts)
        if not (args.emails or args.webhook_url is not None):
            raise ValueError("a tunnel health notification needs at least one e-mail address or a webhook URL")
        child = pulumi.ResourceOptions(parent=self)
        self.webhook = None
        if args.webhook_url is not None:
            url = pulumi.Output.secret(args.webhook_url)
            split: pulumi.Output[tuple[str, str | None]] = pulumi.Output.all(url, args.webhook_secret).apply(
                lambda given: split_webhook_secret(given[0], given[1]))
            self.webhook = cloudflare.NotificationPolicyWebhooks(
                f"{name}-webhook",
                cloudflare.NotificationPolicyWebhooksArgs(
                    account_id=args.account_id,
                    name=f"{args.display_name}: tunnel health",
                    # Both stay secret: outputs of an apply over a secret are secret.
                    url=split.apply(lambda pair: pair[0]),
                    secret=split.apply(lambda pair: pair[1]),
                ),
                child,
            )
        mechanisms = cloudflare.NotificationPolicyMechanismsArgs(
            emails=[cloudflare.NotificationPolicyMechanismsEmailArgs(id=email) for email in args.emails] or None,
            webhooks=[cloudflare.NotificationPolicyMechanismsWebhookArgs(id=self.webhook.id)] if self.webhook else None,
        )
        self.policies = {
            cluster: cloudflare.NotificationPolicy(
                f"{name}-{cluster}",
                cloudflare.NotificationPolicyArgs(
                    account_id=args.account_id,
                    name=f"{args.display_name}/{cluster}: tunnel health",
                    description=f"Health changes (degraded, down, healthy again) of the Cloudflare Tunnel of cluster {cluster}",
                    alert_type=ALERT_TYPE,
                    enabled=True,
                    filters=cloudflare.NotificationPolicyFiltersArgs(tunnel_ids=[tunnel_id]),
                    mechanisms=mechanisms,
                ),
                child,
            )
            for cluster, tunnel_id in args.tunnel_ids.items()
        }
        self.register_outputs({})

