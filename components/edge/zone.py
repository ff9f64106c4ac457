"""EdgeZone: the Cloudflare zone of the public hostname and, when this stack owns it, its TLS settings
and the advanced certificate its deeper hostnames need."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cloudflare

# Zone settings every stack that owns the zone enforces: browsers and API clients only ever speak
# TLS 1.2+ to the edge, and the edge only speaks validated TLS to origins.
ZONE_TLS_SETTINGS = {"ssl": "strict", "always_use_https": "on", "min_tls_version": "1.2"}


@dataclass(frozen=True)
class EdgeZoneArgs:
    account_id: str
    zone: str
    manage_zone: bool
    create_zone: bool
    # With manage_zone: hosts of an advanced certificate (Advanced Certificate Manager) for the
    # hostnames Universal SSL does not cover (components/config/plans.py); empty: none needed.
    certificate_hosts: tuple[str, ...] = ()


class EdgeZone(pulumi.ComponentResource):
    zone_id: pulumi.Output[str]

    def __init__(self, name: str, args: EdgeZoneArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:edge:EdgeZone", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.create_zone:
            zone = cloudflare.Zone(
                f"{name}-zone",
                cloudflare.ZoneArgs(
                    account=cloudflare.ZoneAccountArgs(id=args.account_id), name=args.zone, type="full"
                ),
                pulumi.ResourceOptions(parent=self, protect=True),
            )
            self.zone_id = zone.id
        else:
            found = cloudflare.get_zone_output(
                filter=cloudflare.GetZoneFilterArgs(
                    name=args.zone, match="all", account=cloudflare.GetZoneFilterAccountArgs(id=args.account_id)
                ),
                opts=pulumi.InvokeOutputOptions(parent=self),
            )
            self.zone_id = found.id
        self.settings = []
        if args.manage_zone:
            for setting_id, value in ZONE_TLS_SETTINGS.items():
                self.settings.append(
                    cloudflare.ZoneSetting(
                        f"{name}-{setting_id.replace('_', '-')}",
                        cloudflare.ZoneSettingArgs(zone_id=self.zone_id, setting_id=setting_id, value=value),
                        child,
                    )
                )
        self.certificate = None
        if args.manage_zone and args.certificate_hosts:
            # Ordered explicitly: Total TLS skips hostnames served through Tunnel or Load Balancing.
            self.certificate = cloudflare.CertificatePack(
                f"{name}-certificate",
                cloudflare.CertificatePackArgs(
                    zone_id=self.zone_id,
                    type="advanced",
                    hosts=list(args.certificate_hosts),
                    certificate_authority="lets_encrypt",
                    validation_method="txt",
                    validity_days=90,
                ),
                child,
            )
        self.register_outputs({"zone_id": self.zone_id})
