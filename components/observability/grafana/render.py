"""A DashboardSpec as Grafana's dashboard JSON, through grafana-foundation-sdk's typed builders.

Panels get fixed ids in reading order (alerts link to them by id), every query reads the
dashboard's `datasource` variable, and every panel's description ends with its link to
docs/alerts.md: the runbook section of the alert it explains, else the dashboard's own section.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from components.observability.grafana.panels import DashboardSpec, Panel, Variable

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
PANEL_HEIGHT = 8


@dataclass(frozen=True)
class Rendered:
    key: str
    uid: str
    title: str
    json: str
    # Alert name -> id of the panel that explains it.
    alert_panels: dict[str, int]


def render(spec: DashboardSpec, uid: str, tags: list[str], namespace: str, runbook_url: str) -> Rendered:
    dashboard = (
        builders.Dashboard(spec.title)
        .uid(uid)
        .description(spec.description)
        .tags(tags)
        .time("now-3h", "now")
        .refresh("1m")
        .readonly()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        # The other dashboards of the same cluster, keeping the time range and the variables.
        .link(builders.DashboardLink("llm-edge").type(model.DashboardLinkType.DASHBOARDS).tags(tags)
              .as_dropdown(True).include_vars(True).keep_time(True))
        .with_variable(builders.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for variable in spec.variables:
        dashboard = dashboard.with_variable(_variable(variable, namespace))
    alert_panels: dict[str, int] = {}
    panel_id = 0
    for row in spec.rows:
        panel_id += 1
        dashboard = dashboard.with_row(builders.Row(row.title).id(panel_id))
        for panel in row.panels:
            panel_id += 1
            if panel.alert:
                alert_panels[panel.alert] = panel_id
            anchor = panel.alert.lower() if panel.alert else f"{spec.key}-dashboard"
            link = f"[{panel.alert or 'docs/alerts.md'}]({runbook_url}#{anchor})"
            dashboard = dashboard.with_panel(_panel(panel, panel_id, f"{panel.description}\n\n{link}"))
    text = JSONEncoder(sort_keys=True, indent=2).encode(dashboard.build())
    return Rendered(spec.key, uid, spec.title, text, alert_panels)


def _panel(panel: Panel, panel_id: int, description: str):
    builder = stat.Panel() if panel.single else timeseries.Panel().fill_opacity(10)
    builder = (
        builder.id(panel_id).title(panel.title).description(description).unit(panel.unit)
        .datasource(DATASOURCE).height(PANEL_HEIGHT).span(panel.width)
    )
    for letter, query in zip(string.ascii_uppercase, panel.queries, strict=False):
        builder = builder.with_target(
            prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(query.ref or letter).datasource(DATASOURCE)
        )
    return builder


def _variable(variable: Variable, namespace: str):
    builder = (
        builders.QueryVariable(variable.name)
        .label(variable.label)
        .datasource(DATASOURCE)
        .query(f"label_values({variable.selector}, {variable.label_name})")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    if variable.multi:
        return builder.multi(True).include_all(True).all_value(".*").current(
            model.VariableOption(selected=True, text="All", value="$__all"))
    # Single choice: the namespace, this cluster's own by default.
    return builder.current(model.VariableOption(selected=True, text=namespace, value=namespace))


def panels_of(dashboard_json: str) -> list[dict]:
    """The panels of a rendered dashboard, rows left out."""
    return [p for p in json.loads(dashboard_json)["panels"] if p["type"] != "row"]
