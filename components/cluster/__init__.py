"""Area `cluster` (type tokens `llm-edge:cluster:*`): what the stack installs in one Kubernetes
cluster (composed from the other areas) and the NetworkPolicies that make the tunnel the only way in."""

from components.cluster.firewall import Allow, NamespaceFirewall, NamespaceFirewallArgs
from components.cluster.installation import ClusterInstallation, ClusterInstallationArgs

__all__ = ["Allow", "ClusterInstallation", "ClusterInstallationArgs", "NamespaceFirewall", "NamespaceFirewallArgs"]
