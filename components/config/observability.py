"""Config of the alerts: Prometheus rules and monitors, and the Cloudflare tunnel-health notification."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from components.config.base import Model

PromDuration = Annotated[str, Field(pattern=r"^[0-9]+(s|m|h)$")]
# A Kubernetes label key (optional DNS prefix) and value.
LabelKey = Annotated[str, Field(pattern=r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")]
LabelValue = Annotated[str, Field(pattern=r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")]
# kube-prometheus-stack's Prometheus selects rules and monitors by its Helm release label.
DEFAULT_PROMETHEUS_SELECTOR = {"release": "kube-prometheus-stack"}


class Hold(Model):
    """An alert without a threshold: how long its condition must hold before it fires."""

    for_: PromDuration = Field(alias="for")


class Threshold(Model):
    """An alert on a value above `threshold` for `for`."""

    threshold: Annotated[float, Field(gt=0)]
    for_: PromDuration = Field(alias="for")


class RatioThreshold(Threshold):
    """A ratio (0.05 = 5 %) above `threshold` for `for`."""

    threshold: Annotated[float, Field(gt=0, le=1)]


class AlertRules(Model):
    """Thresholds and `for` durations of each alert (docs/alerts.md); a rule given in part keeps the other defaults."""

    tunnel_down: Hold = Hold(for_="2m")
    tunnel_degraded: Hold = Hold(for_="10m")
    tunnel_error_ratio: RatioThreshold = RatioThreshold(threshold=0.05, for_="5m")
    gateway_error_ratio: RatioThreshold = RatioThreshold(threshold=0.05, for_="5m")
    # Seconds, p95 over the gateway's streaming requests.
    gateway_first_token_p95: Threshold = Threshold(threshold=5, for_="10m")
    gateway_no_healthy_upstream: Hold = Hold(for_="2m")
    # Share of all gateway requests answered 429 by the per-client limits.
    gateway_rate_limited_ratio: RatioThreshold = RatioThreshold(threshold=0.1, for_="10m")
    # A replica deciding rpm and tpm by its local share (gateway.sharedLimits).
    gateway_limit_store_down: Hold = Hold(for_="5m")
    model_no_ready_replica: Hold = Hold(for_="5m")
    # Requests waiting in one vLLM pod's queue.
    vllm_queue_waiting: Threshold = Threshold(threshold=10, for_="5m")
    vllm_kv_cache_usage: RatioThreshold = RatioThreshold(threshold=0.95, for_="10m")
    vllm_preemptions_per_minute: Threshold = Threshold(threshold=1, for_="10m")
    # Seconds, p99 as vLLM measures it.
    vllm_first_token_p99: Threshold = Threshold(threshold=10, for_="10m")
    gpu_pod_pending: Hold = Hold(for_="15m")

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        by_alias = {field.alias or name: name for name, field in cls.model_fields.items()}
        merged = {}
        for key, value in data.items():
            name = by_alias.get(key, key)
            default = cls.model_fields[name].default if name in cls.model_fields else None
            if isinstance(value, dict) and isinstance(default, BaseModel):
                value = {**default.model_dump(by_alias=True), **value}
            merged[key] = value
        return merged


class DashboardSettings(Model):
    """Grafana dashboards of each cluster, as ConfigMaps for Grafana's dashboard sidecar (docs/alerts.md#dashboards)."""

    enabled: bool = True
    # What the sidecar selects ConfigMaps by (kube-prometheus-stack: `grafana_dashboard: "1"`).
    labels: dict[LabelKey, LabelValue] = Field(default_factory=lambda: {"grafana_dashboard": "1"})
    # The sidecar's `folderAnnotation` and the folder the dashboards land in (with
    # `provider.foldersFromFilesStructure`); without those settings Grafana ignores it.
    folder_annotation: LabelKey = "grafana_folder"
    folder: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}$")] = "llm-edge"
    # Where Grafana is served: each alert's `dashboard_url` is then a whole URL; without it the
    # link is relative (`/d/<uid>?viewPanel=...`), to open on the Grafana that loaded the dashboards.
    grafana_url: Annotated[str, Field(pattern=r"^https?://[^\s?#]+[^\s?#/]$")] | None = None


class AlertSettings(Model):
    """Prometheus alerts in each cluster and Cloudflare's tunnel-health notification (docs/alerts.md)."""

    enabled: bool = False
    # Each part on its own: a PrometheusRule, PodMonitors, the Cloudflare notification policy.
    prometheus_rules: bool = True
    pod_monitors: bool = True
    tunnel_notifications: bool = True
    # Labels the cluster's Prometheus selects PrometheusRules (ruleSelector) and PodMonitors
    # (podMonitorSelector) by.
    rule_labels: dict[LabelKey, LabelValue] = Field(default_factory=lambda: dict(DEFAULT_PROMETHEUS_SELECTOR))
    monitor_labels: dict[LabelKey, LabelValue] = Field(default_factory=lambda: dict(DEFAULT_PROMETHEUS_SELECTOR))
    # Where docs/alerts.md is published; each alert links to its section (`#<alert name, lower case>`).
    runbook_url: Annotated[str, Field(pattern=r"^https?://[^\s#]+$")] = "https://github.com/llm-edge/llm-edge/blob/main/docs/alerts.md"
    # Destinations of the Cloudflare tunnel-health notification (which still fires with the cluster gone).
    emails: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = Field(default_factory=list)
    # A secret config key holding the webhook URL (Slack-style URLs carry their token).
    webhook_url_config_key: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")] | None = None
    # A secret config key with the webhook's secret, given apart from the URL (a Google Chat token,
    # or what a generic webhook receives as `cf-webhook-auth`). Slack and Discord tokens are taken
    # off their URLs by the stack itself.
    webhook_secret_config_key: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")] | None = None
    rules: AlertRules = AlertRules()
    # Rendered only when `enabled` (the alerts) is true, like every other part.
    dashboards: DashboardSettings = DashboardSettings()

    def problems(self) -> list[tuple[str, Any, str]]:
        if self.enabled and self.tunnel_notifications and not (self.emails or self.webhook_url_config_key):
            return [("alerts.emails", [], "alerts.enabled with tunnelNotifications needs a destination: set alerts.emails "
                     "and/or alerts.webhookUrlConfigKey (a secret config key holding the webhook URL), "
                     "or set alerts.tunnelNotifications: false")]
        return []
