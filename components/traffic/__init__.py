"""Area `traffic` (type tokens `llm-edge:traffic:*`): where the public hostname points (dns or weighted)."""

from components.traffic.switch import TrafficSwitch, TrafficSwitchArgs, pool_order

__all__ = ["TrafficSwitch", "TrafficSwitchArgs", "pool_order"]
