"""The traffic switch through a blue/green migration: each step changes only traffic resources."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from components.config import ConfigError
from offline.engine import ROOT, StackRun, run_stack
from offline.render import unwrap
from tests.conftest import stack_run
from tests.helpers import AWS_SECRET_VERSION, DNS_RECORD, plain
from tests.variants import PROD_GREEN_ACTIVE_OVERRIDES, PROD_WEIGHTED_OVERRIDES

TRAFFIC_SWITCH = "llm-edge:traffic:TrafficSwitch"
LOAD_BALANCER = "cloudflare:index/loadBalancer:LoadBalancer"
POOL = "cloudflare:index/loadBalancerPool:LoadBalancerPool"
MONITOR = "cloudflare:index/loadBalancerMonitor:LoadBalancerMonitor"
ENDPOINT_VERSION = "vault-endpoint-value"


def diff(before: StackRun, after: StackRun) -> dict[str, set[str]]:
    """URNs created, deleted and updated (provider or unwrapped inputs differ) from `before` to `after`."""
    old = {r.urn: (r.provider_urn, unwrap(r.inputs)) for r in before.resources}
    new = {r.urn: (r.provider_urn, unwrap(r.inputs)) for r in after.resources}
    return {
        "created": set(new) - set(old),
        "deleted": set(old) - set(new),
        "updated": {urn for urn in set(old) & set(new) if old[urn] != new[urn]},
    }


def differing(before: StackRun, after: StackRun) -> set[str]:
    return set().union(*diff(before, after).values())


def traffic_urns(run: StackRun) -> set[str]:
    """The TrafficSwitch component and everything below it."""
    [switch] = run.of_type(TRAFFIC_SWITCH)
    return {switch.urn} | {r.urn for r in run.children_of(switch)}


def names(urns: set[str]) -> list[str]:
    """`type::name` of each URN, for readable assertion messages."""
    return sorted("::".join(urn.split("::")[-2:]).rsplit("$", 1)[-1] for urn in urns)


def assert_only_traffic_changes(before: StackRun, after: StackRun) -> set[str]:
    changed = differing(before, after)
    outside = changed - traffic_urns(before) - traffic_urns(after)
    assert not outside, f"a traffic change touched resources outside the TrafficSwitch: {names(outside)}"
    return changed


def urn_of(run: StackRun, type_token: str, name: str) -> str:
    return run.one(type_token, name).urn


@cache
def prod_file_config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]


def prod_clusters() -> dict[str, Any]:
    return copy.deepcopy(prod_file_config()["llm-edge:clusters"])


def weighted(weights: dict[str, int], active: str = "blue", **load_balancer) -> dict[str, Any]:
    traffic: dict[str, Any] = {"mode": "weighted", "active": active, "weights": weights, "validationHostnames": "nested"}
    if load_balancer:
        traffic["loadBalancer"] = load_balancer
    return {"traffic": traffic}


def with_third_cluster(traffic: dict[str, Any]) -> dict[str, Any]:
    """prod plus a cluster `purple` (a copy of blue reached through its own context and OIDC provider)."""
    clusters = prod_clusters()
    purple = copy.deepcopy(clusters["blue"])
    purple["context"] = "purple-admin"
    purple["oidcProviderArn"] = purple["oidcProviderArn"].replace("BLUE", "PURPLE")
    return {"clusters": {**clusters, "purple": purple}, **traffic}


def prod(overrides: dict[str, Any] | None = None) -> StackRun:
    return stack_run("prod", overrides)


def test_prod_file_is_dns_mode_on_blue():
    # The cases below start from the committed prod config; say so if it moves.
    assert prod_file_config()["llm-edge:traffic"] == {"mode": "dns", "active": "blue", "validationHostnames": "nested"}


def test_the_diff_reports_nothing_for_two_runs_of_the_same_config():
    fresh = run_stack("prod")
    assert differing(prod(), fresh) == set()
    # ... and does see a change: the same program with another public hostname differs widely.
    assert len(differing(prod(), prod({"publicHostname": "api.example.com"}))) > 5


def test_dns_cut_over_blue_to_green_only_repoints_the_public_records():
    before, after = prod(), prod(PROD_GREEN_ACTIVE_OVERRIDES)
    changed = assert_only_traffic_changes(before, after)
    public = after.one(DNS_RECORD, "traffic-public")
    assert changed == {public.urn} | {r.urn for r in after.of_type(DNS_RECORD) if r.name.startswith("traffic-route-")}
    green_tunnel = after.outputs["tunnels"]["green"]
    assert plain(public)["content"] == f"{green_tunnel}.cfargotunnel.com"
    assert plain(public)["name"] == "llm.example.com" and plain(public)["proxied"] is True


def test_dns_to_weighted_adds_a_load_balancer_in_front_of_the_unchanged_cname():
    before, after = prod(), prod(PROD_WEIGHTED_OVERRIDES)
    assert_only_traffic_changes(before, after)
    changes = diff(before, after)
    # The CNAME stays as it was (blue has the highest weight): it keeps the hostname answered and
    # covered by Universal SSL while the load balancer, which takes precedence, is created.
    assert changes["deleted"] == set() and changes["updated"] == set()
    assert changes["created"] == {
        urn_of(after, LOAD_BALANCER, "traffic-lb"),
        urn_of(after, MONITOR, "traffic-monitor"),
        urn_of(after, POOL, "traffic-pool-blue"),
        urn_of(after, POOL, "traffic-pool-green"),
    }
    # ... and back: the reverse change is as small.
    assert_only_traffic_changes(after, before)


@pytest.mark.parametrize(
    "start,end,route_moves",
    [
        ({"blue": 100, "green": 0}, {"blue": 90, "green": 10}, False),
        ({"blue": 90, "green": 10}, {"blue": 50, "green": 50}, False),
        ({"blue": 50, "green": 50}, {"blue": 0, "green": 100}, True),
    ],
)
def test_a_weight_shift_updates_only_the_load_balancer(start, end, route_moves):
    before, after = prod(weighted(start)), prod(weighted(end))
    changed = assert_only_traffic_changes(before, after)
    # Pools and the monitor keep their names and inputs: a shift is one in-place update.
    expected = {urn_of(after, LOAD_BALANCER, "traffic-lb")}
    if route_moves:
        # The public CNAME (behind the load balancer) and hostname routes follow the highest weight.
        expected |= {r.urn for r in after.of_type(DNS_RECORD) if r.name.startswith("traffic-")}
    assert changed == expected


weight = st.integers(min_value=0, max_value=100)


@settings(max_examples=8, deadline=None, derandomize=True)
@given(
    blue=weight,
    green=weight,
    steering=st.sampled_from(["random", "least_outstanding_requests", "least_connections"]),
)
def test_any_weight_map_changes_only_traffic_resources(blue, green, steering):
    if blue + green == 0:
        with pytest.raises(ConfigError, match="llm-edge:traffic.weights: sum to 0"):
            prod(weighted({"blue": 0, "green": 0}))
        return
    run = prod(weighted({"blue": blue, "green": green}, steeringPolicy=steering))
    assert_only_traffic_changes(prod(), run)
    assert_only_traffic_changes(prod(PROD_WEIGHTED_OVERRIDES), run)
    lb = plain(run.one(LOAD_BALANCER, "traffic-lb"))
    pools = {r.name.removeprefix("traffic-pool-"): run_id(r) for r in run.of_type(POOL)}
    assert lb["randomSteering"]["poolWeights"] == {pools["blue"]: blue / 100, pools["green"]: green / 100}
    assert lb["fallbackPool"] == pools["blue" if blue >= green else "green"]
    assert lb["steeringPolicy"] == steering


def run_id(resource) -> str:
    """The id the mock engine gave a resource (deterministic per type and name)."""
    from offline.engine import _stable_id

    return _stable_id(f"{resource.type}::{resource.name}")


def test_weighted_mode_builds_monitor_pools_and_load_balancer_on_the_public_hostname():
    run = prod(PROD_WEIGHTED_OVERRIDES)
    tunnels = run.outputs["tunnels"]
    monitor = plain(run.one(MONITOR, "traffic-monitor"))
    assert monitor["accountId"] == "0123456789abcdef0123456789abcdef"
    assert (monitor["type"], monitor["path"], monitor["expectedCodes"]) == ("https", "/healthz", "200")
    assert monitor["header"] == {"Host": ["llm.example.com"]}
    for cluster in ("blue", "green"):
        pool = run.one(POOL, f"traffic-pool-{cluster}")
        [origin] = plain(pool)["origins"]
        assert origin["address"] == f"{tunnels[cluster]}.cfargotunnel.com"
        assert origin["header"] == {"hosts": ["llm.example.com"]}
        assert plain(pool)["monitor"] == run_id(run.one(MONITOR, "traffic-monitor"))
        assert plain(pool)["name"] == f"llm-edge-prod-{cluster}"
        # Left out, Cloudflare would probe from every data centre: Enterprise only.
        assert plain(pool)["checkRegions"] == ["WEU"]
    lb = plain(run.one(LOAD_BALANCER, "traffic-lb"))
    blue, green = (run_id(run.one(POOL, f"traffic-pool-{c}")) for c in ("blue", "green"))
    assert lb["name"] == "llm.example.com" and lb["proxied"] is True
    assert lb["defaultPools"] == [blue, green] and lb["fallbackPool"] == blue
    assert lb["steeringPolicy"] == "random"
    assert lb["randomSteering"] == {"poolWeights": {blue: 0.9, green: 0.1}, "defaultWeight": 0}
    public = plain(run.one(DNS_RECORD, "traffic-public"))
    assert (public["name"], public["content"], public["proxied"]) == ("llm.example.com", f"{tunnels['blue']}.cfargotunnel.com", True)
    assert run.outputs["traffic"] == {"mode": "weighted", "weights": {"blue": 90, "green": 10}}
    assert run.outputs["activeCluster"] == "blue"


def test_load_balancer_settings_come_from_config():
    run = prod(weighted({"blue": 10, "green": 90}, monitorPath="/readyz", intervalSeconds=120,
                        retries=1, expectedCodes="2xx", monitorType="http", checkRegions=["WNAM", "ENAM", "WEU"]))
    monitor = plain(run.one(MONITOR, "traffic-monitor"))
    assert (monitor["path"], monitor["interval"], monitor["retries"], monitor["expectedCodes"], monitor["type"]) == (
        "/readyz", 120, 1, "2xx", "http")
    assert plain(run.one(POOL, "traffic-pool-blue"))["checkRegions"] == ["WNAM", "ENAM", "WEU"]
    lb = plain(run.one(LOAD_BALANCER, "traffic-lb"))
    assert lb["fallbackPool"] == run_id(run.one(POOL, "traffic-pool-green"))
    assert run.outputs["activeCluster"] == "green"


def test_every_cluster_keeps_its_validation_hostname_in_every_mode():
    for overrides in (None, PROD_GREEN_ACTIVE_OVERRIDES, PROD_WEIGHTED_OVERRIDES):
        run = prod(overrides)
        for cluster in ("blue", "green"):
            record = plain(run.one(DNS_RECORD, f"tunnel-{cluster}-dns-{cluster}-llm-example-com"))
            assert record["name"] == f"{cluster}.llm.example.com"
            assert record["content"] == f"{run.outputs['tunnels'][cluster]}.cfargotunnel.com"


def disabled(cluster: str, traffic: dict[str, Any]) -> dict[str, Any]:
    clusters = prod_clusters()
    clusters[cluster]["enabled"] = False
    return {"clusters": clusters, **traffic}


def test_a_disabled_cluster_stays_deployed_but_gets_no_pool():
    run = prod(disabled("blue", weighted({"green": 100}, active="green")))
    assert [r.name for r in run.of_type(POOL)] == ["traffic-pool-green"]
    assert run.one(DNS_RECORD, "tunnel-blue-dns-blue-llm-example-com")
    assert run.one("llm-edge:cluster:ClusterStack", "blue")
    # Disabling a cluster that takes no traffic is itself only a traffic change.
    assert_only_traffic_changes(prod(weighted({"blue": 0, "green": 100}, active="green")), run)
    assert_only_traffic_changes(prod(PROD_GREEN_ACTIVE_OVERRIDES), prod(disabled("blue", PROD_GREEN_ACTIVE_OVERRIDES)))


def test_enabling_a_validated_cluster_changes_nothing_in_dns_mode_and_adds_its_pool_in_weighted_mode():
    dns = {"traffic": {"mode": "dns", "active": "blue", "validationHostnames": "nested"}}
    assert differing(prod(disabled("green", dns)), prod(dns)) == set()
    only_blue = weighted({"blue": 100})
    changes = diff(prod(disabled("green", only_blue)), prod(only_blue))
    after = prod(only_blue)
    assert changes == {"created": {urn_of(after, POOL, "traffic-pool-green")},
                       "updated": {urn_of(after, LOAD_BALANCER, "traffic-lb")}, "deleted": set()}


def test_returning_to_dns_mode_on_the_new_cluster_only_deletes_the_load_balancer():
    before, after = prod(weighted({"blue": 0, "green": 100})), prod(PROD_GREEN_ACTIVE_OVERRIDES)
    changes = diff(before, after)
    assert changes["created"] == set() and changes["updated"] == set()
    assert names(changes["deleted"]) == sorted(
        f"{t}::{n}" for t, n in [(LOAD_BALANCER, "traffic-lb"), (MONITOR, "traffic-monitor"),
                                 (POOL, "traffic-pool-blue"), (POOL, "traffic-pool-green")])


def owned_by(run: StackRun, urn: str, cluster: str) -> bool:
    """True when the resource, one of its ancestors, or its provider is named after the cluster."""
    by_urn = run.by_urn()
    resource = by_urn[urn]
    if run.name_of(resource.provider_urn) == cluster:
        return True
    while resource is not None:
        if cluster in resource.name.split("-"):
            return True
        resource = by_urn.get(resource.parent_urn)
    return False


THIRD_CLUSTER_CASES = pytest.mark.parametrize(
    "traffic,new_traffic_resources",
    [
        ({"traffic": {"mode": "dns", "active": "blue", "validationHostnames": "nested"}}, set()),
        (PROD_WEIGHTED_OVERRIDES, {(POOL, "traffic-pool-purple")}),
    ],
    ids=["dns", "weighted"],
)


def third_cluster_changes(traffic, new_traffic_resources) -> tuple[dict[str, set[str]], set[str]]:
    """The diff of adding `purple`, checked for creates and deletes; returns it and the expected updates."""
    before, after = prod(traffic), prod(with_third_cluster(traffic))
    changes = diff(before, after)
    assert changes["deleted"] == set()
    created_traffic = changes["created"] & traffic_urns(after)
    assert created_traffic == {urn_of(after, t, n) for t, n in new_traffic_resources}
    foreign = {urn for urn in changes["created"] - created_traffic if not owned_by(after, urn, "purple")}
    assert foreign == set(), f"created for purple but not owned by it: {names(foreign)}"
    assert len(changes["created"] - created_traffic) > 10
    assert after.one(DNS_RECORD, "tunnel-purple-dns-purple-llm-example-com")
    # Running resources change only where the load balancer gains a pool (at weight 0).
    expected_updates = {urn_of(after, LOAD_BALANCER, "traffic-lb")} if new_traffic_resources else set()
    return changes, expected_updates


@THIRD_CLUSTER_CASES
def test_adding_a_third_cluster_adds_only_its_resources_and_updates_nothing_running(traffic, new_traffic_resources):
    changes, expected_updates = third_cluster_changes(traffic, new_traffic_resources)
    assert changes["updated"] == expected_updates, names(changes["updated"])


def test_removing_the_cluster_that_takes_the_traffic_in_the_same_change_is_refused():
    clusters = prod_clusters()
    del clusters["blue"]
    with pytest.raises(ConfigError) as caught:
        prod({"clusters": clusters})
    message = str(caught.value)
    assert "llm-edge:traffic.active: names no declared cluster" in message
    assert "first set traffic.active to another cluster and pulumi up" in message


def migration_steps() -> list[tuple[str, dict[str, Any] | None]]:
    """docs/migration.md from start to end, both ways of cutting over."""
    green_only = {name: spec for name, spec in prod_clusters().items() if name != "blue"}
    return [
        ("blue active", None),
        ("weighted 100/0", weighted({"blue": 100, "green": 0})),
        ("weighted 90/10", PROD_WEIGHTED_OVERRIDES),
        ("weighted 50/50", weighted({"blue": 50, "green": 50})),
        ("weighted 0/100", weighted({"blue": 0, "green": 100})),
        ("green active", PROD_GREEN_ACTIVE_OVERRIDES),
        ("blue disabled", disabled("blue", PROD_GREEN_ACTIVE_OVERRIDES)),
        ("blue removed", {"clusters": green_only, **PROD_GREEN_ACTIVE_OVERRIDES}),
    ]


def test_the_endpoint_secret_never_changes_through_the_migration():
    steps = migration_steps()
    first = plain(prod(steps[0][1]).one(AWS_SECRET_VERSION, ENDPOINT_VERSION))
    assert '"base_url": "https://llm.example.com/v1"' in first["secretString"]
    for label, overrides in steps[1:]:
        run = prod(overrides)
        assert plain(run.one(AWS_SECRET_VERSION, ENDPOINT_VERSION)) == first, f"endpoint secret changed at step {label}"
        assert run.outputs["baseUrl"] == "https://llm.example.com/v1"


def test_each_migration_step_before_the_removal_changes_only_traffic_resources():
    steps = migration_steps()[:-1]
    for (_, before), (label, after) in zip(steps, steps[1:], strict=False):
        try:
            assert_only_traffic_changes(prod(before), prod(after))
        except AssertionError as error:
            raise AssertionError(f"step {label}: {error}") from None
