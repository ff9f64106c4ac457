"""Config of which cluster(s) the public hostname sends traffic to (docs/migration.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from components.config.base import DnsLabel, Model

# Cloudflare's region codes for pool health checks (API: load-balancing pools, `check_regions`).
CheckRegion = Literal["WNAM", "ENAM", "WEU", "EEU", "NSAM", "SSAM", "OC", "ME", "NAF", "SAF", "SAS", "SEAS", "NEAS", "ALL_REGIONS"]


class LoadBalancerSettings(Model):
    """The Cloudflare Load Balancer of `traffic.mode: weighted` (needs the Load Balancing add-on)."""

    # The gateway's liveness path, probed through each cluster's tunnel with the public Host header.
    monitor_path: Annotated[str, Field(pattern=r"^/[^\s?#]*$")] = "/healthz"
    monitor_type: Literal["https", "http"] = "https"
    # Cloudflare's minimum interval depends on the plan (60 s on the entry Load Balancing plan).
    interval_seconds: Annotated[int, Field(ge=10, le=3600)] = 60
    timeout_seconds: Annotated[int, Field(ge=1, le=10)] = 5
    retries: Annotated[int, Field(ge=0, le=5)] = 2
    # One code (`200`) or a class (`2xx`), as Cloudflare monitors accept them.
    expected_codes: Annotated[str, Field(pattern=r"^[1-5]([0-9][0-9]|xx)$")] = "200"
    # Every policy listed uses the weights (`random_steering`); the others would ignore them.
    steering_policy: Literal["random", "least_outstanding_requests", "least_connections"] = "random"
    # Regions whose data centres probe each pool (three each; a majority decides). Left out, Cloudflare
    # probes from every data centre, which only Enterprise may use (plans.py). One region is the least
    # a plan includes; pick the one nearest the clusters.
    check_regions: Annotated[list[CheckRegion], Field(min_length=1)] = ["WEU"]


class TrafficSettings(Model):
    """Which cluster(s) the public hostname sends traffic to (docs/migration.md)."""

    # dns: a proxied CNAME to `active`'s tunnel. weighted: a Cloudflare Load Balancer over every
    # enabled cluster, with the weights below.
    mode: Literal["dns", "weighted"] = "dns"
    # Defaults to the only cluster when there is exactly one.
    active: DnsLabel | None = None
    # Relative weights (percentages when they sum to 100); an enabled cluster not listed gets 0:
    # its pool exists and is monitored but receives no traffic.
    weights: dict[DnsLabel, Annotated[int, Field(ge=0, le=100)]] = Field(default_factory=dict)
    load_balancer: LoadBalancerSettings = LoadBalancerSettings()
    # Each cluster's own hostname, for validating it before it takes traffic. flat (works on every
    # plan): `<cluster>-<publicHostname>` in the public hostname's parent domain, covered by Universal
    # SSL when that parent is the zone; nested: `<cluster>.<publicHostname>`, two labels below the
    # zone, which needs Advanced Certificate Manager (config/plans.py).
    validation_hostnames: Literal["flat", "nested"] = "flat"
