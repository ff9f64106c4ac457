"""The Grafana dashboards of one cluster, as code (grafana-foundation-sdk): Overview, Tunnel, and
Gateway and vLLM where the cluster runs them. Not a component: the JSON that
components/observability/dashboards.py puts in ConfigMaps, and the links the alerts carry."""

from __future__ import annotations

import hashlib

from components.observability.grafana import gateway, overview, tunnel, vllm
from components.observability.grafana.panels import ERRORS
from components.observability.grafana.render import Rendered, panels_of, render
from components.observability.grafana.scope import DashboardScope

# Grafana's limit on a dashboard uid.
UID_LENGTH = 40


def dashboards(scope: DashboardScope) -> list[Rendered]:
    specs = [overview.dashboard(scope), tunnel.dashboard(scope)]
    if scope.gateway:
        specs.append(gateway.dashboard(scope))
    if scope.vllm_deployments:
        specs.append(vllm.dashboard(scope))
    # The dashboards of one cluster find each other by these tags (their dashboard links).
    tags = ["llm-edge", scope.instance]
    return [render(spec, dashboard_uid(scope.instance, spec.key), tags, scope.namespace, scope.runbook_url) for spec in specs]


def dashboard_uid(instance: str, key: str) -> str:
    """Unique per stack and cluster, so several stacks' dashboards can share one Grafana."""
    uid = f"llm-edge-{instance}-{key}"
    if len(uid) <= UID_LENGTH:
        return uid
    digest = hashlib.sha256(instance.encode()).hexdigest()[:8]
    return f"llm-edge-{instance[:UID_LENGTH - len(key) - 19]}-{digest}-{key}"


def alert_links(rendered: list[Rendered], grafana_url: str | None, namespace: str) -> dict[str, str]:
    """Alert name -> the URL of the panel that explains it, on this cluster's namespace.
    Relative (`/d/<uid>?...`) without `grafana_url`: it opens on the Grafana that loaded the dashboards."""
    return {
        alert: f"{grafana_url or ''}/d/{dashboard.uid}?viewPanel={panel_id}&var-namespace={namespace}"
        for dashboard in rendered
        for alert, panel_id in dashboard.alert_panels.items()
    }


__all__ = ["ERRORS", "DashboardScope", "Rendered", "alert_links", "dashboard_uid", "dashboards", "panels_of"]
