"""PromQL the dashboards share: selectors on the dashboard's variables, rates, ratios, quantiles.

Every selector names the namespace variable, so one Prometheus can hold several stacks; `job`
is the pod label `app.kubernetes.io/name`, as the PodMonitors set it (alerts.py: JOB_LABEL).
"""

from __future__ import annotations

NAMESPACE = 'namespace="$namespace"'
# Grafana's own window for rate(): at least four scrape intervals, so a graph never has gaps.
WINDOW = "$__rate_interval"


def selector(job: str, *matchers: str) -> str:
    return kube(f'job="{job}"', *matchers)


def kube(*matchers: str) -> str:
    """kube-state-metrics labels each object's series with the object's own namespace."""
    return "{" + ",".join([NAMESPACE, *matchers]) + "}"


def rate(metric: str, labels: str) -> str:
    return f"rate({metric}{labels}[{WINDOW}])"


def summed_rate(metric: str, labels: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} ({rate(metric, labels)})"


def failure_ratio(metric: str, failing: str, every: str, by: str = "") -> str:
    """Share of `metric`'s rate that matches `failing`, 0 (not "no data") while nothing has failed:
    a labelled counter has no series for a status that never happened."""
    total = summed_rate(metric, every, by)
    failed = summed_rate(metric, failing, by)
    zero = f"{total} * 0" if by else "vector(0)"
    return f"({failed} or {zero}) / {total}"


def quantile(q: float, histogram: str, labels: str, by: str, older_name: str | None = None) -> str:
    """`older_name`: the histogram's name in exporter versions that predate a rename."""
    rates = " or ".join(rate(name + "_bucket", labels) for name in (histogram, older_name) if name)
    grouping = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({grouping}) ({rates}))"


def either(first: str, second: str, labels: str) -> str:
    """One series under its current or its older name (exporters rename metrics between versions)."""
    return f"({first}{labels} or {second}{labels})"
