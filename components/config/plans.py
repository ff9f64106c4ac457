"""What each Cloudflare plan and add-on allows, and the checks of a stack's config against it.

No schema holds these rules: they come from Cloudflare's documentation, cited beside each one.
`plan_problems` runs when the config is parsed (StackSettings), so a feature the zone's plan
lacks is a one-line config error naming the key, the plan and the fix, before anything deploys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from components.config.stack import StackSettings

Plan = Literal["free", "pro", "business", "enterprise"]
PLANS: tuple[Plan, ...] = ("free", "pro", "business", "enterprise")
AddOn = Literal["loadBalancing", "advancedCertificateManager"]
Problem = tuple[str, Any, str]

# Rate limiting rules per plan: the availability table of
# https://developers.cloudflare.com/waf/rate-limiting-rules/#availability ("Counting periods: 10 s |
# up to 1 min | up to 10 min | up to 65,535 s"; "Mitigation timeout: 10 s | up to 1 h | up to 1 day |
# up to 1 day"; "Fields in rule expression: Path, Verified Bot | Host, URI, Path, ..."), intersected
# with the API values of https://developers.cloudflare.com/waf/rate-limiting-rules/parameters/
# (periods 10, 60, 120, 300, 600, 3600; timeouts 0, 10, 60, 120, 300, 600, 3600, 86400). A timeout of
# 0 with the block action throttles, and "Only Enterprise customers can throttle requests using the
# Block action" (same page).
RATE_LIMIT_PERIODS: dict[Plan, tuple[int, ...]] = {
    "free": (10,),
    "pro": (10, 60),
    "business": (10, 60, 120, 300, 600),
    "enterprise": (10, 60, 120, 300, 600, 3600),
}
RATE_LIMIT_TIMEOUTS: dict[Plan, tuple[int, ...]] = {
    "free": (10,),
    "pro": (10, 60, 120, 300, 600, 3600),
    "business": (10, 60, 120, 300, 600, 3600, 86400),
    "enterprise": (0, 10, 60, 120, 300, 600, 3600, 86400),
}


def rate_limit_can_match_hosts(plan: Plan) -> bool:
    """Free rules may only use the path and verified-bot fields (no `http.host`): same table."""
    return plan != "free"


# Load balancer health monitors. https://developers.cloudflare.com/load-balancing/monitors/create-monitor/
# gives the minimum interval as "60 (Pro), 15 (Business), and 10 (Enterprise)" while
# https://developers.cloudflare.com/load-balancing/reference/limitations/ says 15 s for every
# non-Enterprise account: 60 s is the value both pages accept below Enterprise.
MONITOR_MIN_INTERVAL: dict[Plan, int] = {"free": 60, "pro": 60, "business": 60, "enterprise": 10}
# Pool health-check regions (Cloudflare API, load-balancing pools `check_regions`): leaving them out
# means "every Cloudflare data center" and `ALL_REGIONS` is "ENTERPRISE customers only".
ENTERPRISE_ONLY_REGIONS = ("ALL_REGIONS",)

# Cloudflare answers 524 when the origin has not started a reply within the Proxy Read Timeout:
# 100 s, which "Enterprise customers can increase ... up to 6,000 seconds"
# (https://developers.cloudflare.com/fundamentals/reference/connection-limits/; the 524 page says
# 120 s, the lower one holds for both).
PROXY_READ_TIMEOUT_S = 100


# Webhook destinations of notifications: "This feature is only available if your account has at
# least one zone with a pro plan or above."
# (https://developers.cloudflare.com/notifications/get-started/configure-webhooks/)
WEBHOOK_MIN_PLAN: Plan = "pro"


def at_least(plan: Plan, minimum: Plan) -> bool:
    return PLANS.index(plan) >= PLANS.index(minimum)


def labels_below(hostname: str, zone: str) -> int:
    """How many DNS labels `hostname` has below `zone` (0 for the apex)."""
    return hostname.removesuffix(zone).rstrip(".").count(".") + 1 if hostname != zone else 0


def deep_hostnames(config: StackSettings) -> list[str]:
    """Proxied hostnames of this stack more than one label below the zone.

    Universal SSL covers "the root domain ... and first-level subdomains"; "Deeper subdomains ... are
    not covered" (https://developers.cloudflare.com/ssl/edge-certificates/universal-ssl/limitations/),
    and Total TLS "does not issue certificates for any hostnames used with ... Cloudflare Tunnel"
    (https://developers.cloudflare.com/ssl/edge-certificates/additional-options/total-tls/): these need
    an advanced certificate ordered for them (Advanced Certificate Manager).
    """
    zone, preview = config.cloudflare.zone, config.preview
    # Checked before a preview's config is derived from dev's: its hostname is pr-<N>.<domain>.
    public = f"pr-{preview.number}.{preview.domain or zone}" if config.is_preview else config.public_hostname
    routes = [] if config.is_preview else [r.hostname for r in config.routes]
    hostnames = [public, *config.validation_hostnames.values(), *routes]
    # A hostname outside the zone is its own config error (StackSettings' cross-checks).
    return [h for h in dict.fromkeys(hostnames) if h.endswith("." + zone) and labels_below(h, zone) > 1]


def certificate_hosts(config: StackSettings) -> list[str]:
    """What an advanced certificate must cover for the deep hostnames: the zone apex (Cloudflare
    requires it in every certificate pack) and a wildcard for each of their parent domains."""
    deep = deep_hostnames(config)
    if not deep:
        return []
    return [config.cloudflare.zone, *sorted({"*." + hostname.split(".", 1)[1] for hostname in deep})]


def plan_problems(config: StackSettings) -> list[Problem]:
    """Every feature the config uses that its zone's plan (and add-ons) lacks, one problem each."""
    return [*_rate_limit_problems(config), *_load_balancer_problems(config), *_certificate_problems(config),
            *_notification_problems(config), *_edge_timeout_problems(config)]


def _edge_timeout_problems(config: StackSettings) -> list[Problem]:
    bound, plan = config.gateway.edge_first_byte_timeout_seconds, config.cloudflare.plan
    if plan == "enterprise" or bound < PROXY_READ_TIMEOUT_S:
        return []
    return [("gateway.edgeFirstByteTimeoutSeconds", bound,
             f"must be below Cloudflare's {PROXY_READ_TIMEOUT_S} s proxy read timeout on the {plan} plan, or clients get "
             "Cloudflare's 524 instead of the gateway's advice to stream")]


def _rate_limit_problems(config: StackSettings) -> list[Problem]:
    limit, plan = config.edge.rate_limit, config.cloudflare.plan
    if limit is None:
        return []
    problems: list[Problem] = []
    if limit.period_seconds not in RATE_LIMIT_PERIODS[plan]:
        problems.append(("edge.rateLimit.periodSeconds", limit.period_seconds,
                         f"is not available on the {plan} plan (allowed: {_listed(RATE_LIMIT_PERIODS[plan])}): "
                         "pick one of those or set cloudflare.plan to the zone's real plan"))
    if limit.mitigation_timeout_seconds not in RATE_LIMIT_TIMEOUTS[plan]:
        problems.append(("edge.rateLimit.mitigationTimeoutSeconds", limit.mitigation_timeout_seconds,
                         f"is not available on the {plan} plan (allowed: {_listed(RATE_LIMIT_TIMEOUTS[plan])}): "
                         "pick one of those or set cloudflare.plan to the zone's real plan"))
    return problems


def _load_balancer_problems(config: StackSettings) -> list[Problem]:
    if config.traffic.mode != "weighted":
        return []
    plan, balancer = config.cloudflare.plan, config.traffic.load_balancer
    problems: list[Problem] = []
    if "loadBalancing" not in config.cloudflare.add_ons:
        # "Load balancing is an add-on for your account"
        # (https://developers.cloudflare.com/load-balancing/get-started/enable-load-balancing/).
        problems.append(("traffic.mode", "weighted",
                         "needs Cloudflare's Load Balancing add-on: buy it for the account and list loadBalancing "
                         "in cloudflare.addOns, or use traffic.mode: dns"))
    if balancer.interval_seconds < MONITOR_MIN_INTERVAL[plan]:
        problems.append(("traffic.loadBalancer.intervalSeconds", balancer.interval_seconds,
                         f"is below the {MONITOR_MIN_INTERVAL[plan]} s minimum of health monitors on the {plan} plan"))
    for region in balancer.check_regions:
        if region in ENTERPRISE_ONLY_REGIONS and plan != "enterprise":
            problems.append(("traffic.loadBalancer.checkRegions", region,
                             f"is Enterprise-only (plan: {plan}): list the regions near your clusters, e.g. [WEU]"))
    return problems


def _certificate_problems(config: StackSettings) -> list[Problem]:
    deep = deep_hostnames(config)
    if not deep or "advancedCertificateManager" in config.cloudflare.add_ons:
        return []
    return [("cloudflare.addOns", list(config.cloudflare.add_ons),
             f"{', '.join(deep)} {'is' if len(deep) == 1 else 'are'} more than one label below {config.cloudflare.zone}, "
             "which Universal SSL does not cover: buy Advanced Certificate Manager and list advancedCertificateManager "
             "here, or use traffic.validationHostnames: flat (and first-level hostnames)")]


def _notification_problems(config: StackSettings) -> list[Problem]:
    alerts, plan = config.alerts, config.cloudflare.plan
    if not (alerts.enabled and alerts.tunnel_notifications and alerts.webhook_url_config_key) or at_least(plan, WEBHOOK_MIN_PLAN):
        return []
    return [("alerts.webhookUrlConfigKey", alerts.webhook_url_config_key,
             f"webhook destinations need a zone on the {WEBHOOK_MIN_PLAN} plan or above in the account (this zone: "
             f"{plan}): use alerts.emails only, or set cloudflare.plan to the zone's real plan")]


def _listed(values: tuple[int, ...]) -> str:
    return ", ".join(str(v) for v in values)
