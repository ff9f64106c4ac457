"""Config against the zone's Cloudflare plan and add-ons: every feature a plan lacks is one line
naming the key, the plan and the fix (components/config/plans.py cites the rules)."""

from __future__ import annotations

import copy

import pytest

from components.config import PLANS, certificate_hosts, parse_stack_config
from tests.config.cases import VALID, errors_of

OWNER = {**VALID, "edge": {"manageZone": True}}


def on(plan: str, base: dict = VALID, add_ons: tuple[str, ...] = (), **sections) -> dict:
    raw = copy.deepcopy(base)
    raw["cloudflare"] = {**raw["cloudflare"], "plan": plan, "addOns": list(add_ons)}
    raw.update(sections)
    return raw


def rate_limit(period: int, timeout: int) -> dict:
    return {"manageZone": True, "rateLimit": {"periodSeconds": period, "mitigationTimeoutSeconds": timeout}}


def flat() -> dict:
    return {"validationHostnames": "flat"}


@pytest.mark.parametrize(
    "plan,period,timeout,allowed",
    [
        ("free", 10, 10, True),
        ("free", 60, 10, False),
        ("free", 10, 60, False),
        ("pro", 60, 3600, True),
        ("pro", 120, 60, False),
        ("pro", 60, 86400, False),
        ("business", 600, 86400, True),
        ("business", 3600, 60, False),
        ("enterprise", 3600, 0, True),
        ("business", 60, 0, False),
    ],
)
def test_rate_limit_periods_and_timeouts_follow_the_plan(plan, period, timeout, allowed):
    raw = on(plan, edge=rate_limit(period, timeout), traffic=flat())
    if allowed:
        parse_stack_config("prod", raw)
        return
    lines = errors_of(raw, "prod")
    assert lines and all(f"is not available on the {plan} plan (allowed: " in line for line in lines), lines
    assert any(key in lines[0] for key in ("edge.rateLimit.periodSeconds", "edge.rateLimit.mitigationTimeoutSeconds"))


def test_the_rate_limit_defaults_are_the_free_plans_values():
    config = parse_stack_config("prod", on("free", edge={"manageZone": True, "rateLimit": {}}, traffic=flat()))
    assert config.edge.rate_limit is not None
    assert (config.edge.rate_limit.period_seconds, config.edge.rate_limit.mitigation_timeout_seconds) == (10, 10)


def test_weighted_mode_needs_the_load_balancing_add_on():
    traffic = {"mode": "weighted", "weights": {"blue": 100}, "validationHostnames": "flat"}
    [line] = errors_of(on("business", traffic=traffic), "prod")
    assert line.startswith("llm-edge:traffic.mode: needs Cloudflare's Load Balancing add-on")
    parse_stack_config("prod", on("business", add_ons=("loadBalancing",), traffic=traffic))


@pytest.mark.parametrize("plan,interval,allowed", [("pro", 30, False), ("business", 60, True), ("enterprise", 10, True)])
def test_monitor_interval_minimum(plan, interval, allowed):
    traffic = {"mode": "weighted", "weights": {"blue": 1}, "validationHostnames": "flat",
               "loadBalancer": {"intervalSeconds": interval}}
    raw = on(plan, add_ons=("loadBalancing",), traffic=traffic)
    if allowed:
        parse_stack_config("prod", raw)
    else:
        assert errors_of(raw, "prod") == [
            f"llm-edge:traffic.loadBalancer.intervalSeconds: is below the 60 s minimum of health monitors on the {plan} plan"
            f" (got {interval})"
        ]


def test_pools_probe_from_named_regions_and_every_region_is_enterprise_only():
    weighted = {"mode": "weighted", "weights": {"blue": 1}, "validationHostnames": "flat"}
    config = parse_stack_config("prod", on("pro", add_ons=("loadBalancing",), traffic=weighted))
    assert config.traffic.load_balancer.check_regions == ["WEU"]
    traffic = {"mode": "weighted", "weights": {"blue": 1}, "validationHostnames": "flat",
               "loadBalancer": {"checkRegions": ["ALL_REGIONS"]}}
    [line] = errors_of(on("business", add_ons=("loadBalancing",), traffic=traffic), "prod")
    assert line.startswith("llm-edge:traffic.loadBalancer.checkRegions: is Enterprise-only (plan: business)")
    parse_stack_config("prod", on("enterprise", add_ons=("loadBalancing",), traffic=traffic))
    bad = {**traffic, "loadBalancer": {"checkRegions": ["EUROPE"]}}
    assert errors_of(on("enterprise", add_ons=("loadBalancing",), traffic=bad), "prod")[0].startswith(
        "llm-edge:traffic.loadBalancer.checkRegions.0: Input should be 'WNAM', 'ENAM'")


def test_hostnames_two_labels_below_the_zone_need_advanced_certificate_manager():
    [line] = errors_of(on("enterprise", traffic={"validationHostnames": "nested"}))
    assert line.startswith("llm-edge:cloudflare.addOns: blue.llm.example.com is more than one label below example.com")
    assert "traffic.validationHostnames: flat" in line
    nested = parse_stack_config("dev", on("free", add_ons=("advancedCertificateManager",), traffic={"validationHostnames": "nested"}))
    assert certificate_hosts(nested) == ["example.com", "*.llm.example.com"]
    flat_config = parse_stack_config("dev", on("free"))
    assert flat_config.validation_hostnames == {"blue": "blue-llm.example.com"} and certificate_hosts(flat_config) == []


def test_routes_and_preview_domains_count_too():
    route = [{"hostname": "a.b.example.com", "backend": "x"}]
    raw = on("pro", traffic=flat(), routes=route, backends={"x": {"url": "http://x", "models": ["m"], "authenticates": True}})
    assert "a.b.example.com is more than one label below" in errors_of(raw)[0]
    preview = on("free", traffic=flat(), preview={"domain": "preview.example.com"})
    assert "pr-7.preview.example.com is more than one label below" in errors_of(preview, "pr-7")[0]


def test_webhook_notifications_need_a_pro_zone():
    alerts = {"enabled": True, "webhookUrlConfigKey": "hook"}
    [line] = errors_of(on("free", traffic=flat(), alerts=alerts))
    assert line.startswith("llm-edge:alerts.webhookUrlConfigKey: webhook destinations need a zone on the pro plan or above")
    parse_stack_config("dev", on("pro", traffic=flat(), alerts=alerts))
    parse_stack_config("dev", on("free", traffic=flat(), alerts={"enabled": True, "emails": ["a@example.com"]}))


def test_plan_and_add_on_names_are_checked():
    assert errors_of(on("premium", traffic=flat()))[0].startswith(
        "llm-edge:cloudflare.plan: Input should be " + ", ".join(f"'{p}'" for p in PLANS[:-1]) + f" or '{PLANS[-1]}'")
    assert errors_of(on("pro", add_ons=("argo",), traffic=flat()))[0].startswith("llm-edge:cloudflare.addOns.0:")


def test_every_stack_file_states_its_plan():
    import yaml

    from offline.engine import ROOT

    for path in sorted(ROOT.glob("Pulumi.*.yaml")):
        cloudflare = yaml.safe_load(path.read_text())["config"]["llm-edge:cloudflare"]
        assert cloudflare.get("plan") in PLANS, f"{path.name} does not state cloudflare.plan"


def test_the_gateways_edge_bound_stays_below_cloudflares_read_timeout():
    [line] = errors_of(on("business", traffic=flat(), gateway={"edgeFirstByteTimeoutSeconds": 100}))
    assert line.startswith("llm-edge:gateway.edgeFirstByteTimeoutSeconds: must be below Cloudflare's 100 s proxy read timeout")
    config = parse_stack_config("dev", on("enterprise", traffic=flat(), gateway={"edgeFirstByteTimeoutSeconds": 900}))
    assert config.gateway.edge_first_byte_timeout_seconds == 900
