"""Cloudflare Tunnel routing: a catch-all last, validated TLS to origins, only proxied public names."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ResourceValidationPolicy
from pulumi_policy.proxy import UnknownValueError

from .kube import dig

TUNNEL_CONFIG = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
TUNNEL_CNAME_SUFFIX = ".cfargotunnel.com"


def _ingresses(props):
    return dig(props, "config", "ingresses") or []


def _ends_with_catch_all(args, report_violation):
    if args.resource_type != TUNNEL_CONFIG:
        return
    rules = _ingresses(args.props)
    last = rules[-1] if rules else None
    if last is None or last.get("hostname") or last.get("path"):
        report_violation(
            f"tunnel config {args.name}: the last ingress rule must be a catch-all (no hostname, no path, "
            "e.g. service http_status:404); cloudflared rejects a config without one, and it decides what "
            "unknown hostnames get."
        )


def _verifies_origin_tls(args, report_violation):
    if args.resource_type != TUNNEL_CONFIG:
        return
    places = [("config.originRequest", dig(args.props, "config", "originRequest"))]
    places += [(f"ingress {r.get('hostname') or 'catch-all'}", r.get("originRequest")) for r in _ingresses(args.props)]
    for where, origin_request in places:
        if (origin_request or {}).get("noTlsVerify") is True:
            report_violation(
                f"tunnel config {args.name}: {where} sets noTLSVerify: true, so cloudflared accepts any certificate "
                "from the origin. Give the origin a certificate cloudflared trusts (originServerName / caPool) "
                "or use plain http inside the cluster; noTLSVerify is for dev only."
            )


def _tunnel_records_proxied(args, report_violation):
    if args.resource_type != DNS_RECORD:
        return
    props = args.props
    if props.get("type") != "CNAME":
        return
    try:
        content = props.get("content")
        # During a preview a new tunnel's id is not known yet: treat the record as pointing at it.
        points_at_tunnel = content is None or str(content).endswith(TUNNEL_CNAME_SUFFIX)
    except UnknownValueError:
        points_at_tunnel = True
    if points_at_tunnel and props.get("proxied") is not True:
        report_violation(
            f"DNS record {props.get('name')} points at a tunnel but is not proxied: it would publish the tunnel's "
            "name and bypass the edge (TLS settings, rate limits, Access). Set proxied: true."
        )


tunnel_catch_all = ResourceValidationPolicy(
    name="tunnel-catch-all",
    description="The tunnel's ingress rules end with a catch-all rule.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_ends_with_catch_all,
)
tunnel_origin_tls = ResourceValidationPolicy(
    name="tunnel-origin-tls",
    description="The tunnel never sets noTLSVerify: true (disable this policy only for dev).",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_verifies_origin_tls,
)
tunnel_dns_proxied = ResourceValidationPolicy(
    name="tunnel-dns-proxied",
    description="Every public DNS record that points at a tunnel is proxied through Cloudflare.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_tunnel_records_proxied,
)

POLICIES = [tunnel_catch_all, tunnel_origin_tls, tunnel_dns_proxied]
