"""Config of the alerts: destinations, thresholds given in part, keys named in errors."""

from __future__ import annotations

import re

import pytest

from components.config import ConfigError, parse_stack_config

BASE = {
    "cloudflare": {"accountId": "0" * 32, "zone": "example.com"},
    "publicHostname": "llm.example.com",
    "clusters": {"a": {"context": "x"}},
}


def test_alerts_without_a_destination_is_a_clear_config_error():
    with pytest.raises(ConfigError, match=r"llm-edge:alerts\.emails: alerts\.enabled with tunnelNotifications needs a destination"):
        parse_stack_config("dev", {**BASE, "alerts": {"enabled": True}})
    # Without the Cloudflare notification no destination is needed.
    assert parse_stack_config("dev", {**BASE, "alerts": {"enabled": True, "tunnelNotifications": False}}).alerts.enabled


def test_a_rule_given_in_part_keeps_its_other_default():
    alerts = {"rules": {"gpuPodPending": {"for": "30m"}, "vllmQueueWaiting": {"threshold": 50}}}
    rules = parse_stack_config("dev", {**BASE, "alerts": alerts}).alerts.rules
    assert (rules.gpu_pod_pending.for_, rules.vllm_queue_waiting.threshold, rules.vllm_queue_waiting.for_) == ("30m", 50, "5m")


@pytest.mark.parametrize("alerts,key", [
    ({"rules": {"tunnelDown": {"for": "2 minutes"}}}, "alerts.rules.tunnelDown.for"),
    ({"rules": {"gatewayErrorRatio": {"threshold": 5}}}, "alerts.rules.gatewayErrorRatio.threshold"),
    ({"rules": {"tunnelDwn": {"for": "2m"}}}, "alerts.rules.tunnelDwn"),
    ({"emails": ["not-an-address"]}, "alerts.emails.0"),
    ({"ruleLabels": {"bad key!": "x"}}, "alerts.ruleLabels"),
])
def test_bad_alert_settings_name_the_key(alerts, key):
    with pytest.raises(ConfigError, match=re.escape(f"llm-edge:{key}")):
        parse_stack_config("dev", {**BASE, "alerts": alerts})


def test_dashboards_default_to_the_kube_prometheus_stack_sidecar():
    dashboards = parse_stack_config("dev", BASE).alerts.dashboards
    assert dashboards.enabled and dashboards.labels == {"grafana_dashboard": "1"}
    assert (dashboards.folder_annotation, dashboards.folder, dashboards.grafana_url) == ("grafana_folder", "llm-edge", None)


@pytest.mark.parametrize("dashboards,key", [
    ({"labels": {"bad key!": "1"}}, "alerts.dashboards.labels"),
    ({"folderAnnotation": "not an annotation"}, "alerts.dashboards.folderAnnotation"),
    ({"folder": "../elsewhere"}, "alerts.dashboards.folder"),
    ({"grafanaUrl": "grafana.example.com"}, "alerts.dashboards.grafanaUrl"),
    ({"grafanaUrl": "https://grafana.example.com/"}, "alerts.dashboards.grafanaUrl"),
    ({"enable": False}, "alerts.dashboards.enable"),
])
def test_bad_dashboard_settings_name_the_key(dashboards, key):
    with pytest.raises(ConfigError, match=re.escape(f"llm-edge:{key}")):
        parse_stack_config("dev", {**BASE, "alerts": {"dashboards": dashboards}})
