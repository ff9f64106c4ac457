"""TrafficSwitch: owns only the public hostname's records, so a cut-over touches nothing else.

`dns` mode: one proxied CNAME from the public hostname to the active cluster's tunnel.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.tunnel import proxied_cname


@dataclass(frozen=True)
class TrafficSwitchArgs:
    zone_id: pulumi.Input[str]
    public_hostname: str
    active_cluster: str
    # Cluster name -> `<tunnel id>.cfargotunnel.com`.
    tunnel_cnames: dict[str, pulumi.Input[str]]


class TrafficSwitch(pulumi.ComponentResource):
    target: pulumi.Output[str]

    def __init__(self, name: str, args: TrafficSwitchArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:traffic:TrafficSwitch", name, None, opts)
        self.record = proxied_cname(
            f"{name}-public",
            args.zone_id,
            args.public_hostname,
            args.tunnel_cnames[args.active_cluster],
            f"public endpoint, active cluster {args.active_cluster}",
            self,
        )
        self.target = pulumi.Output.from_input(args.tunnel_cnames[args.active_cluster])
        self.register_outputs({"target": self.target})
