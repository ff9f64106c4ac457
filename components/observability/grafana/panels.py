"""What a dashboard is made of, before it is Grafana JSON: queries, panels, rows and variables.

The dashboard modules (overview, gateway, vllm, tunnel) describe their content with these small
types; render.py turns them into Grafana's model with grafana-foundation-sdk's builders.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.observability.grafana import promql

# The refId of a query that counts failures: 0 on a healthy stack, above 0 when its part fails.
# Grafana shows it as the query's name; tests/components/observability/test_dashboards.py holds
# every such query to both promises against a real Prometheus.
ERRORS = "errors"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    # Unset: the query's letter in its panel (A, B, ...), as Grafana names them.
    ref: str | None = None


@dataclass(frozen=True)
class Panel:
    title: str
    # What the panel shows and how to read it; render.py appends the link to docs/alerts.md.
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    # A single current number (stat) instead of a graph over time.
    single: bool = False
    # The alert this panel explains: the alert's `dashboard_url` opens it, its description links
    # to the alert's runbook section.
    alert: str | None = None
    width: int = 8


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    """A query variable: Grafana fills it from `label_values(<selector>, <label>)`."""

    name: str
    label: str
    selector: str
    label_name: str
    # Several values at once, with "All" as the regex `.*` (queries match it with `=~`).
    multi: bool = True


@dataclass(frozen=True)
class DashboardSpec:
    key: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    rows: tuple[Row, ...]


def rate_panel(title: str, description: str, metric: str, labels: str, by: str, legend: str, **options) -> Panel:
    """A counter's per-second rate, summed by `by`: the most common panel here."""
    options.setdefault("unit", "reqps")
    return Panel(title, description, (Query(promql.summed_rate(metric, labels, by), legend),), **options)
