"""Config of traffic: errors that name the key and the fix, and the configs a migration passes through."""

from __future__ import annotations

import copy

import pytest

from components.config import ConfigError, parse_stack_config

VALID = {
    # Weighted mode needs the Load Balancing add-on (tests/config/test_plans.py).
    "cloudflare": {"accountId": "0123456789abcdef0123456789abcdef", "zone": "example.com", "addOns": ["loadBalancing"]},
    "publicHostname": "llm.example.com",
    "clusters": {"blue": {"context": "blue-admin"}, "green": {"context": "green-admin"}},
    "traffic": {"mode": "dns", "active": "blue"},
}


def errors_of(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config("prod", raw)
    return [line.strip() for line in str(caught.value).splitlines()[1:]]


def config_with(traffic: dict, disabled_clusters: tuple[str, ...] = ()) -> dict:
    raw = copy.deepcopy(VALID)
    raw["traffic"] = traffic
    for name in disabled_clusters:
        raw["clusters"][name]["enabled"] = False
    return raw


@pytest.mark.parametrize(
    "traffic,disabled_clusters,expected",
    [
        ({"mode": "dns", "active": "purple"}, (),
         "llm-edge:traffic.active: names no declared cluster (declared: blue, green). If you removed it while it still "
         "receives all the traffic: first set traffic.active to another cluster and pulumi up, then remove the cluster "
         "in a second change (got \"purple\")"),
        ({"mode": "dns", "active": "green"}, ("green",),
         "llm-edge:traffic.active: is disabled (clusters.green.enabled: false): pick an enabled cluster (blue) or enable it"),
        ({"mode": "weighted", "weights": {"blue": 0, "green": 0}}, (),
         "llm-edge:traffic.weights: sum to 0 across the enabled clusters (blue, green): give at least one a weight above 0"),
        ({"mode": "weighted"}, (), "llm-edge:traffic.weights: sum to 0 across the enabled clusters"),
        ({"mode": "weighted", "weights": {"blue": 100, "green": 10}}, ("green",),
         "llm-edge:traffic.weights.green: is set on a disabled cluster (clusters.green.enabled: false): drop the weight "
         "or enable the cluster (got 10)"),
        ({"mode": "weighted", "weights": {"blue": 100, "purple": 10}}, (),
         "llm-edge:traffic.weights.purple: names no declared cluster (declared: blue, green). If you removed it while it "
         "still has a weight: first set its weight to 0 (or drop the key) and pulumi up, then remove the cluster in a "
         "second change (got 10)"),
        ({"mode": "weighted", "weights": {"blue": 101}}, (), "llm-edge:traffic.weights.blue: Input should be less than or equal to 100"),
        ({"mode": "dns"}, (), "llm-edge:traffic.active: is required with several clusters: one of blue, green"),
        ({"mode": "canary", "active": "blue"}, (), "llm-edge:traffic.mode: Input should be 'dns' or 'weighted'"),
        ({"mode": "weighted", "weights": {"blue": 1}, "loadBalancer": {"expectedCodes": "ok"}}, (),
         "llm-edge:traffic.loadBalancer.expectedCodes:"),
        ({"mode": "weighted", "weights": {"blue": 1}, "loadBalancer": {"steeringPolicy": "geo"}}, (),
         "llm-edge:traffic.loadBalancer.steeringPolicy:"),
        ({"mode": "weighted", "weights": {"blue": 1}, "loadBalancer": {"monitorPath": "healthz"}}, (),
         "llm-edge:traffic.loadBalancer.monitorPath:"),
        ({"mode": "dns", "active": "blue", "weigths": {}}, (), "llm-edge:traffic.weigths: is not a known setting"),
    ],
)
def test_traffic_config_errors_name_the_key_and_the_fix(traffic, disabled_clusters, expected):
    [line] = errors_of(config_with(traffic, disabled_clusters))
    assert line.startswith(expected), line


def test_every_cluster_disabled_is_an_error():
    lines = errors_of(config_with({"mode": "weighted", "weights": {}}, ("blue", "green")))
    assert lines == ['llm-edge:clusters: every cluster has enabled: false; at least one must take public traffic (got ["blue", "green"])']


def test_valid_traffic_configs():
    config = parse_stack_config("prod", config_with({"mode": "weighted", "weights": {"green": 30}}))
    # An enabled cluster without a weight gets a pool at weight 0; the highest weight is "active".
    assert config.traffic_weights == {"blue": 0, "green": 30}
    assert config.active_cluster == "green"
    tie = parse_stack_config("prod", config_with({"mode": "weighted", "weights": {"blue": 50, "green": 50}}))
    assert tie.active_cluster == "blue"
    assert tie.traffic.load_balancer.monitor_path == "/healthz"
    # Weights may be prepared in dns mode; they take effect when the mode changes.
    dns = parse_stack_config("prod", config_with({"mode": "dns", "active": "green", "weights": {"blue": 10}}))
    assert dns.active_cluster == "green"
    single = parse_stack_config("dev", {**VALID, "clusters": {"blue": {"context": "x"}}, "traffic": {}})
    assert single.active_cluster == "blue"
