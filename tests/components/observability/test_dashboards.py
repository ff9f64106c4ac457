"""The Grafana dashboards the stack renders: loadable by the sidecar, every query valid PromQL
over metrics something in the stack exports, answered by a real Prometheus server loaded with a
synthetic healthy world, its error queries non-zero in a failing one, and every alert linked to
the panel that explains it.

The worlds (world.py) mirror each cluster's rendered objects; promtool builds a TSDB from them
and the Debian `prometheus` server answers on a free loopback port for this module only.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from components.observability.grafana import ERRORS, dashboard_uid, panels_of
from offline.render import kubernetes_objects
from tests.components.observability.exporters import exported_names, metric_names
from tests.components.observability.test_alerts import RUNBOOK, alert_rules, promtool, run_promtool
from tests.components.observability.world import STEP_SECONDS, ClusterFacts, Samples, World, facts
from tests.conftest import stack_run
from tests.helpers import objects
from tests.variants import PREVIEW_OVERRIDES, PROD_SHARED_LIMITS_IN_CLUSTER_OVERRIDES

RUNBOOK_URL = "https://github.com/llm-edge/llm-edge/blob/main/docs/alerts.md"
# (stack, overrides): the stack files, a preview (a gateway without vLLM) and shared limits (their panel).
RENDERS = {"dev": ("dev", None), "prod": ("prod", None), "pr-123": ("pr-123", PREVIEW_OVERRIDES),
           "prod-shared-limits": ("prod", PROD_SHARED_LIMITS_IN_CLUSTER_OVERRIDES)}
WORLD_STEPS = 40  # ten minutes of 15 s scrapes: every rate window full
# As Grafana fills `$__rate_interval` for a 15 s scrape interval: four of them.
RATE_INTERVAL = "1m"


def run(variant: str):
    stack, overrides = RENDERS[variant]
    return stack_run(stack, overrides)


def dashboards(variant: str, cluster: str) -> list[dict]:
    maps = [o for o in objects(run(variant), cluster, "ConfigMap") if o["metadata"]["labels"].get("grafana_dashboard") == "1"]
    return [json.loads(text) for m in maps for text in m["data"].values()]


def targets(dashboard: dict) -> list[dict]:
    return [{**t, "panel": p["title"], "dashboard": dashboard["title"]} for p in panels_of(json.dumps(dashboard)) for t in p["targets"]]


# prod-shared-limits differs from prod by one panel: its blue cluster shows it.
CLUSTERS = [(variant, cluster) for variant in RENDERS for cluster in sorted(kubernetes_objects(run(variant)))
            if variant != "prod-shared-limits" or cluster == "blue"]
# The worlds: every cluster of the stack files, healthy and failing.
WORLDS = [(variant, cluster) for variant, cluster in CLUSTERS if variant != "pr-123"]


def namespace_of(variant: str, cluster: str, failing: bool) -> str:
    return f"{variant}-{cluster}-{'failing' if failing else 'healthy'}"


def instantiate(expr: str, namespace: str, model: str = ".*") -> str:
    """The query as Grafana sends it: variables filled ("All" is `.*`), `$__rate_interval` resolved."""
    return (expr.replace("$__rate_interval", RATE_INTERVAL).replace("$namespace", namespace)
            .replace("$model", model).replace("$client", ".*"))


# ---- the ConfigMaps ------------------------------------------------------------------------------


def test_every_cluster_of_prod_gets_the_four_dashboards_and_a_preview_the_three_without_vllm():
    for cluster in ("blue", "green"):
        assert sorted(d["title"] for d in dashboards("prod", cluster)) == [
            f"llm-edge / {name} (prod-{cluster})" for name in ("Gateway", "Overview", "Tunnel", "vLLM")
        ]
    assert sorted(d["uid"] for d in dashboards("pr-123", "dev")) == [f"llm-edge-pr-123-dev-{k}" for k in ("gateway", "overview", "tunnel")]


@pytest.mark.parametrize("variant,cluster", CLUSTERS)
def test_config_maps_carry_the_sidecar_label_the_folder_and_one_file_per_dashboard(variant, cluster):
    maps = [o for o in objects(run(variant), cluster, "ConfigMap") if o["metadata"]["name"].startswith("llm-edge-dashboards-")]
    assert maps
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["annotations"] == {"grafana_folder": "llm-edge"}
        [(key, text)] = config_map["data"].items()
        dashboard = json.loads(text)
        # The sidecar writes every key into one folder: the file names must differ across stacks.
        assert key == f"{dashboard['uid']}.json" and len(dashboard["uid"]) <= 40
        assert dashboard["uid"].startswith(f"llm-edge-{RENDERS[variant][0]}-{cluster}-")


def test_every_dashboard_is_one_grafanas_schema_reads_back_unchanged():
    """The SDK's models are generated from Grafana's dashboard schema: what they decode and
    encode again unchanged has no field that schema lacks."""
    register_default_plugins()  # the panel and query types, so they decode as such
    for variant, cluster in CLUSTERS:
        for config_map in objects(run(variant), cluster, "ConfigMap"):
            if config_map["metadata"]["name"].startswith("llm-edge-dashboards-"):
                [text] = config_map["data"].values()
                assert JSONEncoder(sort_keys=True, indent=2).encode(Dashboard.from_json(json.loads(text))) == text


def test_a_long_stack_and_cluster_name_still_gives_a_uid_grafana_accepts():
    long = dashboard_uid("pr-12345-a-very-long-cluster-name", "overview")
    shorter = dashboard_uid("pr-12345-a-very-long-cluster-nam", "overview")
    assert len(long) <= 40 and long.endswith("-overview") and long != shorter


def test_dashboard_settings_reach_the_config_maps_and_the_alert_links():
    dashboards_config = {"labels": {"grafana_dashboard": "llm"}, "folderAnnotation": "k8s-sidecar-target-directory",
                         "folder": "LLM", "grafanaUrl": "https://grafana.example.com"}
    alerts = {"enabled": True, "emails": ["a@example.com"], "dashboards": dashboards_config}
    custom = stack_run("dev", {"alerts": alerts})
    maps = [o for o in objects(custom, "dev", "ConfigMap") if o["metadata"]["name"].startswith("llm-edge-dashboards-")]
    assert len(maps) == 4
    assert all(m["metadata"]["labels"]["grafana_dashboard"] == "llm" for m in maps)
    assert all(m["metadata"]["annotations"] == {"k8s-sidecar-target-directory": "LLM"} for m in maps)
    (rule,) = objects(custom, "dev", "PrometheusRule")
    assert all(a["annotations"]["dashboard_url"].startswith("https://grafana.example.com/d/llm-edge-dev-dev-") for a in alert_rules(rule))


def test_no_dashboards_without_alerts():
    assert not [o for o in objects(stack_run("dev", {"alerts": {"enabled": False}}), "dev", "ConfigMap")
                if o["metadata"]["name"].startswith("llm-edge-dashboards-")]


# ---- links between alerts, panels and the runbook --------------------------------------------------


def _doc_anchors() -> set[str]:
    """GitHub's anchors of the headings of docs/alerts.md."""
    headings = [line.lstrip("#").strip() for line in RUNBOOK.read_text().splitlines() if line.startswith("#")]
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("variant,cluster", CLUSTERS)
def test_every_alert_links_to_the_panel_that_explains_it(variant, cluster):
    by_uid = {d["uid"]: {p["id"]: p for p in panels_of(json.dumps(d))} for d in dashboards(variant, cluster)}
    (rule,) = objects(run(variant), cluster, "PrometheusRule")
    namespace = rule["metadata"]["namespace"]
    for alert in alert_rules(rule):
        url = urllib.parse.urlsplit(alert["annotations"]["dashboard_url"])
        uid = url.path.removeprefix("/d/")
        query = urllib.parse.parse_qs(url.query)
        panel = by_uid[uid][int(query["viewPanel"][0])]
        assert query["var-namespace"] == [namespace]
        assert f"({RUNBOOK_URL}#{alert['alert'].lower()})" in panel["description"], (alert["alert"], panel["title"])


@pytest.mark.parametrize("variant,cluster", CLUSTERS)
def test_every_panel_description_links_to_a_section_of_docs_alerts_md(variant, cluster):
    anchors = _doc_anchors()
    for dashboard in dashboards(variant, cluster):
        for panel in panels_of(json.dumps(dashboard)):
            links = re.findall(re.escape(RUNBOOK_URL) + r"#([a-z0-9-]+)\)", panel["description"])
            assert links, f"{dashboard['title']} / {panel['title']}: no link to docs/alerts.md"
            assert set(links) <= anchors, f"{panel['title']}: docs/alerts.md has no section {links}"


# ---- the queries, offline ---------------------------------------------------------------------------


def test_every_query_is_valid_promql(tmp_path):
    """promtool parses each query, variables filled in as Grafana fills them, as a recording rule."""
    rules = [
        {"record": f"dashboard:query:{index}", "expr": instantiate(t["expr"], "ns")}
        for index, t in enumerate(t for v, c in CLUSTERS for d in dashboards(v, c) for t in targets(d))
    ]
    path = tmp_path / "queries.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(rules) > 150


def test_every_query_reads_only_metrics_something_in_the_stack_exports():
    exported = exported_names()
    known = set().union(*exported.values())
    for variant, cluster in CLUSTERS:
        for dashboard in dashboards(variant, cluster):
            for target in targets(dashboard):
                names = metric_names(target["expr"])
                assert names, f"{target['panel']}: no metric found in {target['expr']!r}"
                assert names <= known, f"{dashboard['title']} / {target['panel']}: nothing exports {sorted(names - known)}"


def test_metric_name_extraction_sees_through_promql():
    expr = 'histogram_quantile(0.9, sum by (model, le) (rate(a_bucket{x="y or z"}[5m]) or rate(b:c_bucket[1m]))) / on (pod) d'
    assert metric_names(expr) == {"a_bucket", "b:c_bucket", "d"}


# ---- the queries against a real Prometheus ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_facts(variant: str, cluster: str) -> ClusterFacts:
    return facts(objects(run(variant), cluster))


# The worlds end a minute before the test runs: the server takes every sample as past.
WORLD_END = (int(time.time()) // 60 - 1) * 60.0


@pytest.fixture(scope="module")
def world_samples() -> Samples:
    samples = Samples()
    for variant, cluster in WORLDS:
        for failing in (False, True):
            namespace = namespace_of(variant, cluster, failing)
            World(samples, _cluster_facts(variant, cluster), namespace, failing, WORLD_END, WORLD_STEPS).build()
    return samples


@pytest.fixture(scope="module")
def prometheus(world_samples: Samples, tmp_path_factory) -> Iterator[str]:
    server = shutil.which("prometheus")
    if server is None:
        pytest.fail("the prometheus server is missing: apt-get install prometheus (Debian package), or run `make tools`")
    directory = tmp_path_factory.mktemp("prometheus")
    (directory / "world.om").write_text(world_samples.openmetrics())
    built = subprocess.run([promtool(), "tsdb", "create-blocks-from", "openmetrics", str(directory / "world.om"),
                            str(directory / "data")], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stdout + built.stderr
    (directory / "prometheus.yml").write_text(f"global: {{scrape_interval: {STEP_SECONDS}s}}\n")
    url = f"http://127.0.0.1:{_free_port()}"
    with open(directory / "prometheus.log", "w") as log:
        process = subprocess.Popen(
            [server, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address={url.removeprefix('http://')}", "--storage.tsdb.retention.time=3650d"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, (directory / "prometheus.log").read_text()
                assert time.monotonic() < deadline, "prometheus did not become ready within 60 s"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _api(url: str, path: str, **params: str) -> list:
    request = f"{url}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            answer = json.load(reply)
    except urllib.error.HTTPError as error:
        pytest.fail(f"prometheus refused {params}: {error.read().decode()}")
    assert answer["status"] == "success", answer
    return answer["data"]["result"] if path == "query" else answer["data"]


def _values(prometheus: str, expr: str) -> list[float]:
    return [float(r["value"][1]) for r in _api(prometheus, "query", query=expr, time=str(WORLD_END))]


def test_the_world_uses_only_metrics_something_in_the_stack_exports(world_samples):
    known = set().union(*exported_names().values())
    assert world_samples.names() - known == set()


@pytest.mark.parametrize("variant,cluster", WORLDS)
def test_every_query_returns_data_from_a_healthy_world(prometheus, variant, cluster):
    namespace = namespace_of(variant, cluster, failing=False)
    # One model chosen, as Grafana sends it: the regex-escaped name. vLLM and the gateway both label by it.
    served = next(iter(_cluster_facts(variant, cluster).vllm.values()))[0]
    one_model = re.sub(r"([.+*?()|\[\]{}^$])", r"\\\\\1", served)
    checked = 0
    for dashboard in dashboards(variant, cluster):
        for target in targets(dashboard):
            for model in {".*", one_model} if "$model" in target["expr"] else {".*"}:
                values = _values(prometheus, instantiate(target["expr"], namespace, model))
                assert values, f"{target['dashboard']} / {target['panel']} ({model}): no data for {target['expr']}"
                if target["refId"] == ERRORS:
                    assert values == [0.0] * len(values), f"{target['panel']}: {values} on a healthy world"
                checked += 1
    assert checked > 60


@pytest.mark.parametrize("variant,cluster", WORLDS)
def test_error_queries_go_non_zero_in_a_failing_world(prometheus, variant, cluster):
    errors = [t for d in dashboards(variant, cluster) for t in targets(d) if t["refId"] == ERRORS]
    assert len(errors) >= 6
    for target in errors:
        values = _values(prometheus, instantiate(target["expr"], namespace_of(variant, cluster, failing=True)))
        assert values and max(values) > 0, f"{target['dashboard']} / {target['panel']}: {values} on a failing world"


@pytest.mark.parametrize("variant,cluster", WORLDS)
def test_variables_offer_the_namespaces_models_and_clients_of_the_world(prometheus, variant, cluster):
    namespace = namespace_of(variant, cluster, failing=False)
    cluster_facts = _cluster_facts(variant, cluster)
    expected = {
        "namespace": {namespace, namespace_of(variant, cluster, failing=True)},
        "model": {served for served, _, _ in cluster_facts.vllm.values()},
        "client": set(cluster_facts.clients),
    }
    for dashboard in dashboards(variant, cluster):
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            # label_values(<selector>, <label>), as Grafana asks Prometheus for it.
            selector, label = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"]).groups()
            offered = set(_api(prometheus, f"label/{label}/values", **{"match[]": instantiate(selector, namespace)}))
            assert expected[variable["name"]] <= offered, (dashboard["title"], variable["name"], offered)


@pytest.mark.parametrize("variant,cluster", CLUSTERS)
def test_queries_of_a_panel_have_distinct_names_and_panels_fit_the_grid(variant, cluster):
    """Grafana keeps one query per refId, and lays out 24 columns."""
    for dashboard in dashboards(variant, cluster):
        for panel in panels_of(json.dumps(dashboard)):
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), f"{dashboard['title']} / {panel['title']}: {refs}"
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
