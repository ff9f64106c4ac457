"""Area `observability` (type tokens `llm-edge:observability:*`): Prometheus rules and monitors and
Grafana dashboards per cluster, and Cloudflare's tunnel-health notification, which still fires when a
cluster is gone."""

from components.observability.alerts import AlertsArgs, PrometheusAlerts, rule_groups
from components.observability.dashboards import DashboardsArgs, GrafanaDashboards
from components.observability.grafana import DashboardScope
from components.observability.tunnel_health import TunnelHealthNotification, TunnelHealthNotificationArgs

__all__ = [
    "AlertsArgs", "DashboardScope", "DashboardsArgs", "GrafanaDashboards", "PrometheusAlerts", "TunnelHealthNotification",
    "TunnelHealthNotificationArgs", "rule_groups",
]
