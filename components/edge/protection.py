"""EdgeProtection: what Cloudflare does to requests for the API hostname before they reach a tunnel.

Only the stack that owns the zone creates it (both resources are zone-wide or account-wide):
- a rate limit per client IP, in the zone's `http_ratelimit` entry-point ruleset. Cloudflare
  counts per data centre, so `cf.colo.id` must be one of the characteristics;
- optionally Cloudflare Access in front of the API: a self-hosted application on the hostname
  that lets in only the configured machine clients, each with its own service token. Their
  credentials go to Secrets Manager (through the stack's SecretVault) for the clients to read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cloudflare

from components.config import AccessSettings, RateLimitSettings
from components.secrets import VaultEntry, VaultKey, keys

# What OpenAI-compatible clients expect from a 429: a JSON error body.
RATE_LIMITED_BODY = json.dumps(
    {"error": {"message": "Too many requests from this address; retry later.", "type": "rate_limit_exceeded"}}
)


@dataclass(frozen=True)
class EdgeProtectionArgs:
    account_id: str
    zone_id: pulumi.Input[str]
    hostname: str
    rate_limit: RateLimitSettings | None
    access: AccessSettings | None
    # Hostname routes: published too, so protected the same way.
    route_hostnames: tuple[str, ...] = ()
    # Validation hostnames outside `*.<hostname>` (traffic.validationHostnames: flat), listed one by one.
    validation_hostnames: tuple[str, ...] = ()
    # False on the free plan, whose rate limiting rules may only match the path (config/plans.py).
    match_hosts: bool = True


# The gateway serves the OpenAI-compatible API below /v1 (gateway/README.md).
API_PATHS = "/v1/*"


def rate_limited_requests(args: EdgeProtectionArgs) -> str:
    """The rate limit rule's expression: the stack's hostnames, or only the API paths on the free plan.

    Hosts: the public hostname, every validation hostname below it (`<cluster>.<hostname>`, so adding
    a cluster changes nothing here) or listed (flat ones), and the hostname routes. The wildcard
    operator is available on every plan; regular expressions are not
    (https://developers.cloudflare.com/ruleset-engine/rules-language/operators/).
    """
    if not args.match_hosts:
        return f'(http.request.uri.path wildcard "{API_PATHS}")'
    clauses = [f'http.host eq "{args.hostname}"', f'ends_with(http.host, ".{args.hostname}")']
    listed = (*args.validation_hostnames, *args.route_hostnames)
    if listed:
        clauses.append("http.host in {" + " ".join(f'"{h}"' for h in listed) + "}")
    return "(" + " or ".join(clauses) + ")"


class EdgeProtection(pulumi.ComponentResource):
    # Secrets Manager entries (service token credentials), for the stack's SecretVault.
    vault_entries: dict[VaultKey, VaultEntry]

    def __init__(self, name: str, args: EdgeProtectionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:edge:EdgeProtection", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        host_expression = rate_limited_requests(args)
        self.vault_entries = {}
        if args.rate_limit is not None:
            limit = args.rate_limit
            self.rate_limit = cloudflare.Ruleset(
                f"{name}-rate-limit",
                cloudflare.RulesetArgs(
                    zone_id=args.zone_id,
                    kind="zone",
                    phase="http_ratelimit",
                    name="llm-edge rate limits",
                    description="Requests per client IP to the LLM API",
                    rules=[
                        cloudflare.RulesetRuleArgs(
                            description=(
                                f"{limit.requests_per_period} requests per {limit.period_seconds}s per client IP "
                                + (f"on {args.hostname} and its routes" if args.match_hosts else f"to {API_PATHS} on every hostname")
                            ),
                            expression=host_expression,
                            action="block",
                            action_parameters=cloudflare.RulesetRuleActionParametersArgs(
                                response=cloudflare.RulesetRuleActionParametersResponseArgs(
                                    status_code=429, content_type="application/json", content=RATE_LIMITED_BODY
                                )
                            ),
                            ratelimit=cloudflare.RulesetRuleRatelimitArgs(
                                characteristics=["ip.src", "cf.colo.id"],
                                period=limit.period_seconds,
                                requests_per_period=limit.requests_per_period,
                                mitigation_timeout=limit.mitigation_timeout_seconds,
                            ),
                            enabled=True,
                        )
                    ],
                ),
                child,
            )
        if args.access is not None:
            self._access(name, args, args.access, child)
        self.register_outputs({})

    def _access(self, name: str, args: EdgeProtectionArgs, access: AccessSettings, child: pulumi.ResourceOptions) -> None:
        tokens = {
            client: cloudflare.ZeroTrustAccessServiceToken(
                f"{name}-token-{client}",
                cloudflare.ZeroTrustAccessServiceTokenArgs(
                    account_id=args.account_id,
                    name=f"llm-edge {args.hostname} {client}",
                    duration=access.token_duration,
                ),
                # The provider returns the secret once, on create; Pulumi keeps it encrypted.
                pulumi.ResourceOptions(parent=self, additional_secret_outputs=["client_secret"]),
            )
            for client in access.service_tokens
        }
        policy = cloudflare.ZeroTrustAccessPolicy(
            f"{name}-access-policy",
            cloudflare.ZeroTrustAccessPolicyArgs(
                account_id=args.account_id,
                name=f"llm-edge {args.hostname} machine clients",
                # Service tokens are not identities: Access calls this decision "Service Auth".
                decision="non_identity",
                includes=[
                    cloudflare.ZeroTrustAccessPolicyIncludeArgs(
                        service_token=cloudflare.ZeroTrustAccessPolicyIncludeServiceTokenArgs(token_id=token.id)
                    )
                    for token in tokens.values()
                ],
            ),
            child,
        )
        self.application = cloudflare.ZeroTrustAccessApplication(
            f"{name}-access-app",
            cloudflare.ZeroTrustAccessApplicationArgs(
                account_id=args.account_id,
                name=f"llm-edge API {args.hostname}",
                type="self_hosted",
                destinations=[
                    cloudflare.ZeroTrustAccessApplicationDestinationArgs(type="public", uri=uri)
                    for uri in (args.hostname, f"*.{args.hostname}", *args.validation_hostnames, *args.route_hostnames)
                ],
                policies=[cloudflare.ZeroTrustAccessApplicationPolicyArgs(id=policy.id, precedence=1)],
                # API clients get a 401, not a redirect to a login page they cannot follow.
                service_auth401_redirect=True,
                app_launcher_visible=False,
            ),
            child,
        )
        for client, token in tokens.items():
            credentials = pulumi.Output.all(token.client_id, token.client_secret).apply(
                lambda pair: json.dumps({"CF-Access-Client-Id": pair[0], "CF-Access-Client-Secret": pair[1]})
            )
            self.vault_entries[keys.access_token(client)] = VaultEntry(
                pulumi.Output.secret(credentials),
                f"Cloudflare Access service token of client {client} for {args.hostname} (send both headers)",
            )
