"""InferenceTunnel: one remotely-managed Cloudflare Tunnel, its ingress rules and its DNS records."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_random as random

CATCH_ALL_SERVICE = "http_status:404"
SECRET_BYTES = 32
CONFIG_SOURCE = "cloudflare"


@dataclass(frozen=True)
class IngressRule:
    hostname: str
    service: str


@dataclass(frozen=True)
class OriginRequest:
    connect_timeout_seconds: int
    keep_alive_connections: int
    keep_alive_timeout_seconds: int
    # Accept any certificate from an https origin (self-signed, in dev); the policy pack forbids it elsewhere.
    no_tls_verify: bool = False


@dataclass(frozen=True)
class InferenceTunnelArgs:
    account_id: str
    zone_id: pulumi.Input[str]
    tunnel_name: str
    # In order; a catch-all 404 is always appended as the last rule.
    ingress: list[IngressRule]
    origin_request: OriginRequest
    # Hostnames whose proxied CNAME this tunnel owns (others, like the public hostname, may be
    # owned by the traffic switch).
    dns_hostnames: list[str] = field(default_factory=list)


def cname_target(tunnel_id: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.from_input(tunnel_id).apply(lambda i: f"{i}.cfargotunnel.com")


def proxied_cname(
    resource_name: str, zone_id: pulumi.Input[str], hostname: str, target: pulumi.Input[str], comment: str, parent
) -> cloudflare.DnsRecord:
    """A proxied CNAME: clients only ever see Cloudflare's addresses, never the tunnel's."""
    return cloudflare.DnsRecord(
        resource_name,
        cloudflare.DnsRecordArgs(
            zone_id=zone_id, name=hostname, type="CNAME", content=target, proxied=True, ttl=1, comment=comment
        ),
        pulumi.ResourceOptions(parent=parent),
    )


class InferenceTunnel(pulumi.ComponentResource):
    tunnel_id: pulumi.Output[str]
    cname: pulumi.Output[str]
    token: pulumi.Output[str]

    def __init__(self, name: str, args: InferenceTunnelArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:tunnel:InferenceTunnel", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        secret = random.RandomBytes(f"{name}-secret", random.RandomBytesArgs(length=SECRET_BYTES), child)
        # Tunnel names are unique per account ("409 Conflict ... code 1013: You already have a tunnel
        # with this name", pulumi/pulumi-cloudflare#1440), and a replacement creates the new tunnel
        # before deleting the old one. A suffix that changes with what forces a replacement gives
        # every generation a name of its own: the account and the config source, the only
        # attributes the provider replaces a tunnel for (terraform-provider-cloudflare,
        # internal/services/zero_trust_tunnel_cloudflared/schema.go: RequiresReplace). A new secret
        # is an in-place edit (same tunnel, new token); the secret's length stays among the keepers
        # only so that existing tunnels keep their names.
        generation = random.RandomId(
            f"{name}-generation",
            random.RandomIdArgs(
                byte_length=3,
                keepers={"accountId": args.account_id, "configSrc": CONFIG_SOURCE, "secretBytes": str(SECRET_BYTES)},
            ),
            child,
        )
        tunnel = cloudflare.ZeroTrustTunnelCloudflared(
            f"{name}-tunnel",
            cloudflare.ZeroTrustTunnelCloudflaredArgs(
                account_id=args.account_id,
                name=generation.hex.apply(lambda suffix: f"{args.tunnel_name}-{suffix}"),
                config_src=CONFIG_SOURCE,
                tunnel_secret=secret.base64,
            ),
            child,
        )
        origin = args.origin_request
        rules = [
            cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(hostname=r.hostname, service=r.service)
            for r in args.ingress
        ]
        rules.append(cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(service=CATCH_ALL_SERVICE))
        self.config = cloudflare.ZeroTrustTunnelCloudflaredConfig(
            f"{name}-config",
            cloudflare.ZeroTrustTunnelCloudflaredConfigArgs(
                account_id=args.account_id,
                tunnel_id=tunnel.id,
                source=CONFIG_SOURCE,
                config=cloudflare.ZeroTrustTunnelCloudflaredConfigConfigArgs(
                    ingresses=rules,
                    origin_request=cloudflare.ZeroTrustTunnelCloudflaredConfigConfigOriginRequestArgs(
                        connect_timeout=origin.connect_timeout_seconds,
                        keep_alive_connections=origin.keep_alive_connections,
                        keep_alive_timeout=origin.keep_alive_timeout_seconds,
                        no_tls_verify=origin.no_tls_verify or None,
                    ),
                ),
            ),
            child,
        )
        token = cloudflare.get_zero_trust_tunnel_cloudflared_token_output(
            account_id=args.account_id, tunnel_id=tunnel.id, opts=pulumi.InvokeOutputOptions(parent=self)
        ).token
        self.tunnel_id = tunnel.id
        self.cname = cname_target(tunnel.id)
        # The invoke result is not marked secret by the provider; the token is a credential.
        self.token = pulumi.Output.secret(token)
        self.records = [
            proxied_cname(f"{name}-dns-{_slug(host)}", args.zone_id, host, self.cname, f"tunnel {args.tunnel_name}", self)
            for host in args.dns_hostnames
        ]
        self.register_outputs({"tunnel_id": self.tunnel_id, "cname": self.cname, "token": self.token})


def _slug(hostname: str) -> str:
    return hostname.replace(".", "-")
