"""TrafficSwitch: owns only the public hostname's records, so a cut-over touches nothing else.

`dns` mode: one proxied CNAME from the public hostname to the active cluster's tunnel.
`weighted` mode: a Cloudflare Load Balancer on the public hostname, one pool per enabled cluster
(origin `<tunnel id>.cfargotunnel.com`), a health monitor on the gateway's liveness path and the
weights from config as random-steering pool weights; the CNAME stays, pointing at the cluster with
the highest weight.

Each cluster's tunnel already accepts the public hostname and owns its validation hostname, so
nothing outside this component changes when traffic moves (tests/components/traffic/test_switch.py proves it).
Resource names depend on the cluster only, never on weights or the active cluster, so a weight
shift or a cut-over is an in-place update, not a replacement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_cloudflare as cloudflare

from components.config import LoadBalancerSettings
from components.naming import pool_name
from components.tunnel import proxied_cname


@dataclass(frozen=True)
class TrafficSwitchArgs:
    zone_id: pulumi.Input[str]
    public_hostname: str
    mode: Literal["dns", "weighted"]
    # dns: the cluster taking all traffic; weighted: the highest weight (the fallback pool).
    active_cluster: str
    # Cluster name -> `<tunnel id>.cfargotunnel.com`.
    tunnel_cnames: dict[str, pulumi.Input[str]]
    # Extra public hostnames (hostname routes): every tunnel accepts them, and they follow the
    # public traffic so that a cut-over moves them too.
    route_hostnames: list[str] = field(default_factory=list)
    # Weighted mode only: every enabled cluster -> weight 0-100, and the load balancer settings.
    weights: dict[str, int] = field(default_factory=dict)
    load_balancer: LoadBalancerSettings = LoadBalancerSettings()
    # Pools and monitors are account-level: names carry the stack (`llm-edge-prod`).
    account_id: str | None = None
    pool_name_prefix: str = "llm-edge"


def pool_order(weights: dict[str, int]) -> list[str]:
    """Failover order: highest weight first, declaration order on a tie."""
    declared = list(weights)
    return sorted(declared, key=lambda name: (-weights[name], declared.index(name)))


class TrafficSwitch(pulumi.ComponentResource):
    # Where the public hostname points: the active tunnel (dns) or the load balancer (weighted).
    target: pulumi.Output[str]

    def __init__(self, name: str, args: TrafficSwitchArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:traffic:TrafficSwitch", name, None, opts)
        active_target = args.tunnel_cnames[args.active_cluster]
        # Kept in weighted mode too: a load balancer takes precedence over a record of the same
        # name, Universal SSL covers a load-balanced hostname only through such a proxied record,
        # and the record serves again if the load balancer is disabled or removed, so switching
        # modes in either direction never leaves the hostname unanswered.
        self.record = proxied_cname(
            f"{name}-public",
            args.zone_id,
            args.public_hostname,
            active_target,
            f"public endpoint, active cluster {args.active_cluster}",
            self,
        )
        if args.mode == "dns":
            self.target = pulumi.Output.from_input(active_target)
        else:
            self.load_balancer = self._weighted(name, args)
            self.target = self.load_balancer.name
        # Hostname routes are single-cluster endpoints (a pool's Host header is the public
        # hostname, so they cannot share its pools): they follow the cluster with most traffic.
        self.route_records = [
            proxied_cname(
                f"{name}-route-{hostname.replace('.', '-')}",
                args.zone_id,
                hostname,
                active_target,
                f"hostname route, active cluster {args.active_cluster}",
                self,
            )
            for hostname in args.route_hostnames
        ]
        self.register_outputs({"target": self.target})

    def _weighted(self, name: str, args: TrafficSwitchArgs) -> cloudflare.LoadBalancer:
        if args.account_id is None:
            raise ValueError("TrafficSwitch: weighted mode needs account_id (pools and monitors are account-level)")
        settings = args.load_balancer
        child = pulumi.ResourceOptions(parent=self)
        # Through a tunnel the Host header selects the ingress rule: without it the probe would
        # hit the catch-all 404 (Cloudflare's tunnel + load balancer guide).
        monitor = cloudflare.LoadBalancerMonitor(
            f"{name}-monitor",
            cloudflare.LoadBalancerMonitorArgs(
                account_id=args.account_id,
                type=settings.monitor_type,
                method="GET",
                path=settings.monitor_path,
                header={"Host": [args.public_hostname]},
                expected_codes=settings.expected_codes,
                interval=settings.interval_seconds,
                timeout=settings.timeout_seconds,
                retries=settings.retries,
                follow_redirects=False,
                description=f"{args.pool_name_prefix}: gateway liveness via each cluster's tunnel",
            ),
            child,
        )
        pools = {
            cluster: cloudflare.LoadBalancerPool(
                f"{name}-pool-{cluster}",
                cloudflare.LoadBalancerPoolArgs(
                    account_id=args.account_id,
                    name=pool_name(f"{args.pool_name_prefix}-{cluster}"),
                    description=f"cluster {cluster}: its Cloudflare Tunnel",
                    monitor=monitor.id,
                    # Named regions: without them Cloudflare probes from every data centre, Enterprise only.
                    check_regions=list(settings.check_regions),
                    minimum_origins=1,
                    origins=[
                        cloudflare.LoadBalancerPoolOriginArgs(
                            name=cluster,
                            address=args.tunnel_cnames[cluster],
                            enabled=True,
                            weight=1,
                            header=cloudflare.LoadBalancerPoolOriginHeaderArgs(hosts=[args.public_hostname]),
                        )
                    ],
                ),
                child,
            )
            for cluster in args.weights
        }
        order = pool_order(args.weights)
        pool_ids = [pools[cluster].id for cluster in order]
        # Cloudflare pool weights are 0-1 and relative to each other: 90/10 becomes 0.9/0.1.
        pool_weights = pulumi.Output.all(*pool_ids).apply(
            lambda ids: {pool_id: args.weights[cluster] / 100 for pool_id, cluster in zip(ids, order, strict=True)}
        )
        return cloudflare.LoadBalancer(
            f"{name}-lb",
            cloudflare.LoadBalancerArgs(
                zone_id=args.zone_id,
                name=args.public_hostname,
                description=f"{args.pool_name_prefix}: weights "
                + ", ".join(f"{cluster} {args.weights[cluster]}" for cluster in order),
                proxied=True,
                default_pools=pool_ids,
                fallback_pool=pools[order[0]].id,
                steering_policy=settings.steering_policy,
                random_steering=cloudflare.LoadBalancerRandomSteeringArgs(default_weight=0, pool_weights=pool_weights),
                # Each pool has one origin: let a request that failed to connect (521-523) be
                # retried once on another pool instead of failing.
                adaptive_routing=cloudflare.LoadBalancerAdaptiveRoutingArgs(failover_across_pools=True),
            ),
            child,
        )
