"""TunnelHealthNotification: Cloudflare tells people when this stack's tunnels change health.

Cloudflare watches the tunnels from its side, so this notification still arrives when a whole
cluster (and its Prometheus) is gone. One account-level policy on `tunnel_health_event` per
tunnel, filtered to its id, sent to e-mail addresses and/or one webhook destination. A policy per
tunnel (not one listing them all) makes adding or removing a cluster a pure addition or deletion:
no running policy is updated.
"""

from __future__ import annotations

from dataclasses import dataclass

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
            self.webhook = cloudflare.NotificationPolicyWebhooks(
                f"{name}-webhook",
                cloudflare.NotificationPolicyWebhooksArgs(
                    account_id=args.account_id, name=f"{args.display_name}: tunnel health", url=pulumi.Output.secret(args.webhook_url)
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

