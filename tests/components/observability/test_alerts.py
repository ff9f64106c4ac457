"""The alerts the stack renders are valid, fire when they should and only then.

The rules come from the rendered `PrometheusRule` of each stack (the same objects `make synth`
writes). promtool checks them, then runs generated unit tests (tests/components/observability/alert_cases.py): for every
alert, each failing scenario fires once its `for` has passed and not one evaluation before it
(while the same rule without `for` already fires then), and each healthy scenario never fires."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring
from pydantic import ValidationError

from components.config import parse_stack_config
from offline.engine import ROOT
from offline.render import kubernetes_objects
from tests.components.observability.alert_cases import CASES, Context, Scenario
from tests.conftest import stack_run as _stack_run
from tests.helpers import objects
from tests.variants import PROD_SHARED_LIMITS_IN_CLUSTER_OVERRIDES

STACKS = ["dev", "prod", "prod-shared-limits"]
# The variants besides the stack files whose rules differ: the shared limit store's alert.
VARIANTS = {"prod-shared-limits": ("prod", PROD_SHARED_LIMITS_IN_CLUSTER_OVERRIDES)}


def stack_run(stack: str, overrides: dict | None = None):
    return _stack_run(*VARIANTS[stack]) if stack in VARIANTS else _stack_run(stack, overrides)

NOTIFICATION_POLICY = "cloudflare:index/notificationPolicy:NotificationPolicy"
MONITORED_APPS = {"cloudflared", "gateway", "vllm"}
RUNBOOK = ROOT / "docs" / "alerts.md"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: apt-get install prometheus (Debian package), or run `make tools`")
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=300)


def clusters(stack: str) -> list[str]:
    return sorted(c for c in kubernetes_objects(stack_run(stack)) if objects(stack_run(stack), c, "PrometheusRule"))


def prometheus_rule(stack: str, cluster: str) -> dict:
    (rule,) = objects(stack_run(stack), cluster, "PrometheusRule")
    return rule


def alert_rules(rule: dict) -> list[dict]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def vllm_deployments(stack: str, cluster: str) -> list[str]:
    return sorted(
        d["metadata"]["name"]
        for d in objects(stack_run(stack), cluster, "Deployment")
        if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name") == "vllm"
    )


# The shared-limits variant's rules are prod's and one more: one of its clusters says what it adds.
STACK_CLUSTERS = [(stack, cluster) for stack in STACKS for cluster in clusters(stack)
                  if stack not in VARIANTS or cluster == "blue"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_cluster_of_every_stack_has_alerts(stack):
    assert clusters(stack) == sorted(kubernetes_objects(stack_run(stack))) != []


def _minutes(duration: str) -> float:
    value, unit = int(duration[:-1]), duration[-1]
    return value * {"s": 1 / 60, "m": 1, "h": 60}[unit]


def _expected_annotations(rule: dict, labels: dict[str, str]) -> dict[str, str]:
    """The rule's annotations as Prometheus renders them for an alert with these labels."""

    def render(text: str) -> str:
        text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
        assert "{{" not in text, f"{rule['alert']}: a template the test cannot render: {text!r}"
        return text

    return {key: render(value) for key, value in rule["annotations"].items()}


def _unit_tests(rule: dict, ctx: Context, held: bool) -> list[dict]:
    """promtool tests of one alert: with `held`, the real rule; otherwise the rule without `for`."""
    hold = _minutes(rule["for"])
    early = max(int(hold) - 1, 0)  # one evaluation before `for` has passed
    fire = int(hold) + 6  # `for` passed, and every 5m rate window full of failing samples
    firing, quiet = CASES[rule["alert"]](ctx)
    tests = []

    def expected(scenario: Scenario) -> list[dict]:
        result = []
        for labels in scenario.alerts:
            all_labels = {**labels, **rule["labels"]}
            result.append({"exp_labels": all_labels, "exp_annotations": _expected_annotations(rule, {**labels, **rule["labels"]})})
        return result

    def series(scenario: Scenario) -> list[dict]:
        return [{"series": s, "values": v.format(n=fire + 1)} for s, v in scenario.series.items()]

    for scenario in firing:
        if held:
            checks = [{"eval_time": f"{early}m", "exp_alerts": []}, {"eval_time": f"{fire}m", "exp_alerts": expected(scenario)}]
        else:
            # Proves the condition already holds at `early`: the silence there is the `for`.
            checks = [{"eval_time": f"{early}m", "exp_alerts": expected(scenario)}]
        tests.append({
            "name": f"{rule['alert']} fires: {scenario.description}",
            "interval": "1m",
            "input_series": series(scenario),
            "alert_rule_test": [{"alertname": rule["alert"], **check} for check in checks],
        })
    if held:
        for scenario in quiet:
            tests.append({
                "name": f"{rule['alert']} stays quiet: {scenario.description}",
                "interval": "1m",
                "input_series": series(scenario),
                "alert_rule_test": [{"alertname": rule["alert"], "eval_time": f"{m}m", "exp_alerts": []} for m in (early, fire)],
            })
    return tests


def _write_unit_test(directory: Path, stack: str, cluster: str, held: bool) -> Path:
    rule = prometheus_rule(stack, cluster)
    groups = rule["spec"]["groups"]
    if not held:
        groups = [{**g, "rules": [{k: v for k, v in r.items() if k != "for"} for r in g["rules"]]} for g in groups]
    rules_file = directory / f"{stack}-{cluster}{'' if held else '-instant'}.rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    tests = []
    for alert in alert_rules(rule):
        ctx = Context(namespace=rule["metadata"]["namespace"], expr=alert["expr"], vllm_deployments=vllm_deployments(stack, cluster))
        tests += _unit_tests(alert, ctx, held)
    test_file = rules_file.with_suffix("").with_suffix(".test.yaml")
    test_file.write_text(yaml.safe_dump(
        {"rule_files": [rules_file.name], "evaluation_interval": "1m", "tests": tests}, sort_keys=False, width=200
    ))
    return test_file


@pytest.mark.parametrize("stack,cluster", STACK_CLUSTERS)
def test_rendered_rules_pass_promtool_check(stack, cluster, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": prometheus_rule(stack, cluster)["spec"]["groups"]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rejects_a_broken_rule(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sum(rate(x[5m])", "for": "1m"}]}]}))
    assert run_promtool("check", "rules", str(path)).returncode != 0


@pytest.mark.parametrize("held", [True, False], ids=["with-for", "without-for"])
@pytest.mark.parametrize("stack,cluster", STACK_CLUSTERS)
def test_every_alert_fires_on_failure_and_stays_quiet_when_healthy(stack, cluster, held, tmp_path):
    test_file = _write_unit_test(tmp_path, stack, cluster, held)
    result = run_promtool("test", "rules", str(test_file))
    assert result.returncode == 0, f"{test_file}:\n{result.stdout}{result.stderr}"


def test_promtool_unit_tests_catch_a_rule_that_never_fires(tmp_path):
    """The generated tests are not vacuous: a rule whose condition can never hold fails them."""
    rule = prometheus_rule("dev", "dev")
    broken = {**rule, "spec": {"groups": [{"name": "g", "rules": [{**alert_rules(rule)[0], "expr": "vector(1) < 0"}]}]}}
    rules_file = tmp_path / "broken.rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": broken["spec"]["groups"]}))
    ctx = Context(namespace=rule["metadata"]["namespace"], expr=alert_rules(rule)[0]["expr"], vllm_deployments=[])
    test_file = tmp_path / "broken.test.yaml"
    test_file.write_text(yaml.safe_dump(
        {"rule_files": [rules_file.name], "evaluation_interval": "1m", "tests": _unit_tests(alert_rules(broken)[0], ctx, True)}
    ))
    assert run_promtool("test", "rules", str(test_file)).returncode != 0


@pytest.mark.parametrize("stack,cluster", STACK_CLUSTERS)
def test_every_rendered_alert_has_a_firing_and_a_quiet_case(stack, cluster):
    rule = prometheus_rule(stack, cluster)
    for alert in alert_rules(rule):
        name = alert["alert"]
        assert name in CASES, f"{name} has no promtool cases: add them to tests/components/observability/alert_cases.py"
        ctx = Context(namespace=rule["metadata"]["namespace"], expr=alert["expr"], vllm_deployments=vllm_deployments(stack, cluster))
        firing, quiet = CASES[name](ctx)
        assert firing and all(s.alerts for s in firing), f"{name}: needs a failing scenario that raises an alert"
        assert quiet and not any(s.alerts for s in quiet), f"{name}: needs a healthy scenario that raises none"


def test_prod_renders_every_alert_the_cases_know():
    rendered = {a["alert"] for variant in ("prod", "prod-shared-limits") for cluster in clusters(variant)
                for a in alert_rules(prometheus_rule(variant, cluster))}
    assert rendered == set(CASES)


def _runbook_sections() -> dict[str, str]:
    """docs/alerts.md: GitHub anchor of each `## ` heading -> the section's text."""
    sections, anchor = {}, None
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("## "):
            anchor = re.sub(r"[^a-z0-9 _-]", "", line[3:].strip().lower()).replace(" ", "-")
            sections[anchor] = ""
        elif anchor:
            sections[anchor] += line + "\n"
    return sections


@pytest.mark.parametrize("stack,cluster", STACK_CLUSTERS)
def test_every_alert_has_severity_and_a_runbook_section(stack, cluster):
    sections = _runbook_sections()
    rule = prometheus_rule(stack, cluster)
    for alert in alert_rules(rule):
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        assert alert["labels"]["llm_edge_instance"] == f"{VARIANTS.get(stack, (stack,))[0]}-{cluster}", name
        url = alert["annotations"]["runbook_url"]
        assert url == f"https://github.com/llm-edge/llm-edge/blob/main/docs/alerts.md#{name.lower()}"
        section = sections.get(name.lower())
        assert section is not None, f"{name}: docs/alerts.md has no '## {name}' section"
        for part in ("**Meaning.**", "**First checks.**", "**Fix.**"):
            assert part in section, f"{name}: its docs/alerts.md section lacks {part}"


@pytest.mark.parametrize("stack,cluster", STACK_CLUSTERS)
def test_rules_only_look_at_their_own_namespace(stack, cluster):
    rule = prometheus_rule(stack, cluster)
    namespace = rule["metadata"]["namespace"]
    for alert in alert_rules(rule):
        selectors = re.findall(r"\{([^{}]*)\}", alert["expr"])
        assert selectors, alert["alert"]
        for selector in selectors:
            assert f'namespace="{namespace}"' in selector, f"{alert['alert']}: selector {{{selector}}} is not scoped to {namespace}"


def test_connector_replicas_and_gpu_vendor_come_from_each_cluster():
    blue, green = (prometheus_rule("prod", c) for c in ("blue", "green"))
    degraded = {c: next(a for a in alert_rules(r) if a["alert"] == "LlmEdgeTunnelDegraded") for c, r in (("blue", blue), ("green", green))}
    assert degraded["blue"]["expr"].endswith("< 3") and degraded["green"]["expr"].endswith("< 2")


def test_rule_labels_let_the_existing_prometheus_select_the_objects():
    run = stack_run("prod")
    for cluster in clusters("prod"):
        assert prometheus_rule("prod", cluster)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        for monitor in objects(run, cluster, "PodMonitor"):
            assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("stack,cluster", STACK_CLUSTERS)
def test_pod_monitors_select_the_stacks_pods_on_their_metrics_port(stack, cluster):
    run = stack_run(stack)
    monitors = objects(run, cluster, "PodMonitor")
    deployments = objects(run, cluster, "Deployment")
    assert {m["metadata"]["name"] for m in monitors} == {"cloudflared", "gateway", "vllm"}
    for monitor in monitors:
        spec = monitor["spec"]
        selected = [
            d for d in deployments
            if _selects(spec["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"])
            and d["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
        ]
        assert selected, f"PodMonitor {monitor['metadata']['name']} selects no Deployment's pods"
        for deployment in selected:
            ports = {p.get("name") for c in deployment["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
            for endpoint in spec["podMetricsEndpoints"]:
                assert endpoint["port"] in ports, f"{deployment['metadata']['name']} has no port {endpoint['port']!r}"
    # The other way round: every Deployment of a monitored app has a monitor.
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if labels.get("app.kubernetes.io/name") in MONITORED_APPS:
            assert any(_selects(m["spec"]["selector"]["matchLabels"], labels) for m in monitors), deployment["metadata"]["name"]


@pytest.mark.parametrize("stack,cluster", STACK_CLUSTERS)
def test_the_jobs_the_rules_query_are_the_monitored_pods(stack, cluster):
    """Series get `job` from the pod label named by the PodMonitor's jobLabel; the rules must use those values."""
    run = stack_run(stack)
    jobs = set()
    for monitor in objects(run, cluster, "PodMonitor"):
        for deployment in objects(run, cluster, "Deployment"):
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            if _selects(monitor["spec"]["selector"]["matchLabels"], labels):
                jobs.add(labels[monitor["spec"]["jobLabel"]])
    queried = {job for a in alert_rules(prometheus_rule(stack, cluster)) for job in re.findall(r'job="([^"]+)"', a["expr"])}
    assert queried and queried <= jobs, f"rules query jobs {sorted(queried - jobs)} that no PodMonitor scrapes"


@pytest.mark.parametrize("stack,cluster", STACK_CLUSTERS)
def test_monitoring_objects_match_the_prometheus_operator_crds(stack, cluster):
    models = {"PrometheusRule": monitoring.PrometheusRule, "PodMonitor": monitoring.PodMonitor}
    found = [o for o in objects(stack_run(stack), cluster) if o["kind"] in models]
    assert len(found) == 4
    for obj in found:
        try:
            models[obj["kind"]].model_validate(obj, extra="forbid")
        except ValidationError as error:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {error}")


def test_crd_validation_rejects_a_misspelt_field():
    monitor = objects(stack_run("dev"), "dev", "PodMonitor")[0]
    bad = {**monitor, "spec": {**monitor["spec"], "podMetricEndpoints": monitor["spec"]["podMetricsEndpoints"]}}
    with pytest.raises(ValidationError, match="podMetricEndpoints"):
        monitoring.PodMonitor.model_validate(bad, extra="forbid")


def test_alerts_disabled_creates_no_alerting_resources():
    run = stack_run("dev", {"alerts": {"enabled": False}})
    assert not run.of_type(NOTIFICATION_POLICY)
    assert not objects(run, "dev", "PrometheusRule") and not objects(run, "dev", "PodMonitor")


BASE = {
    "cloudflare": {"accountId": "0" * 32, "zone": "example.com"},
    "publicHostname": "llm.example.com",
    "clusters": {"a": {"context": "x"}},
}


def test_changed_thresholds_reach_the_rules():
    """A threshold and `for` from config end up in the rule's expression and hold."""
    from components.observability import AlertsArgs, rule_groups

    settings = parse_stack_config("dev", {**BASE, "alerts": {"rules": {"vllmQueueWaiting": {"threshold": 40, "for": "20m"}}}}).alerts
    groups = rule_groups(AlertsArgs(namespace="ns", namespace_name="ns", instance="dev-a", connector_replicas=2,
                                    models=["m"], gateway=True, settings=settings))
    queue = next(r for g in groups for r in g["rules"] if r["alert"] == "LlmEdgeVllmQueueBuildUp")
    assert queue["expr"].endswith("> 40") and queue["for"] == "20m"


def test_the_gateway_metrics_the_rules_query_are_ones_the_gateway_exports():
    import re

    from gateway.metrics import Metrics

    # Family names; series add `_total` (counters) or `_bucket`/`_sum`/`_count` (histograms).
    exported = {family.name for family in Metrics(limit_store=True).registry.collect()}
    rule = prometheus_rule("prod-shared-limits", "blue")
    queried = {m for r in alert_rules(rule) for m in re.findall(r"\b(gateway_[a-z_]+)\b", r["expr"])}
    assert queried, "the prod rules query no gateway metric"
    suffixes = ("_total", "_bucket", "_sum", "_count")
    missing = {m for m in queried if m not in exported and not any(m.removesuffix(s) in exported for s in suffixes if m.endswith(s))}
    assert missing == set(), f"rules query metrics the gateway does not export: {sorted(missing)}"
