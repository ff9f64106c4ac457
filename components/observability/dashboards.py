"""Dashboards: the Grafana side of observability for one cluster.

One ConfigMap per dashboard (grafana/ builds their JSON), labelled for Grafana's dashboard
sidecar (kube-prometheus-stack loads every ConfigMap labelled `grafana_dashboard`), with the
folder annotation the sidecar reads. They hold dashboard JSON only: nothing secret.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.config import DashboardSettings
from components.kube import object_labels
from components.observability.grafana import DashboardScope, alert_links, dashboards

APP = "llm-edge-dashboards"


@dataclass(frozen=True)
class DashboardsArgs:
    namespace: pulumi.Input[str]
    scope: DashboardScope
    settings: DashboardSettings


class GrafanaDashboards(pulumi.ComponentResource):
    config_maps: dict[str, k8s.core.v1.ConfigMap]
    # Alert name -> URL of the panel that explains it (the alerts' `dashboard_url` annotation).
    links: dict[str, str]

    def __init__(self, name: str, args: DashboardsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:observability:Dashboards", name, None, opts)
        settings, scope = args.settings, args.scope
        rendered = dashboards(scope)
        self.links = alert_links(rendered, settings.grafana_url, scope.namespace)
        self.config_maps = {
            dashboard.key: k8s.core.v1.ConfigMap(
                f"{name}-{dashboard.key}",
                k8s.core.v1.ConfigMapInitArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        name=f"{APP}-{dashboard.key}",
                        namespace=args.namespace,
                        labels={**object_labels(APP, scope.instance, "dashboards"), **settings.labels},
                        annotations={settings.folder_annotation: settings.folder},
                    ),
                    # The sidecar writes each key as a file into one folder: unique per stack and cluster.
                    data={f"{dashboard.uid}.json": dashboard.json},
                ),
                pulumi.ResourceOptions(parent=self),
            )
            for dashboard in rendered
        }
        self.register_outputs({})
