"""The tunnel is the only way in: nothing in a cluster may open a public port of its own."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ResourceValidationPolicy

from .kube import containers, dig, object_name, pod_spec

SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
EXPOSING_SERVICE_TYPES = ("LoadBalancer", "NodePort")


def _no_public_entry(args, report_violation):
    if args.resource_type == SERVICE:
        service_type = dig(args.props, "spec", "type")
        if service_type in EXPOSING_SERVICE_TYPES:
            report_violation(
                f"Service {object_name(args.props)} is of type {service_type}: it opens a port outside the cluster. "
                "Use ClusterIP; public traffic arrives through the Cloudflare Tunnel."
            )
        if dig(args.props, "spec", "externalIPs"):
            # Nodes answer on those addresses for the Service's ports, whatever its type
            # (https://kubernetes.io/docs/concepts/services-networking/service/#external-ips).
            report_violation(
                f"Service {object_name(args.props)} has externalIPs: nodes accept its ports on those addresses from "
                "outside the cluster. Remove them; public traffic arrives through the Cloudflare Tunnel."
            )
    elif args.resource_type == INGRESS:
        allowed = args.get_config().get("internalIngressClasses", [])
        ingress_class = dig(args.props, "spec", "ingressClassName") or dig(
            args.props, "metadata", "annotations", "kubernetes.io/ingress.class"
        )
        if ingress_class not in allowed:
            report_violation(
                f"Ingress {object_name(args.props)} uses class {ingress_class!r}, which is not a known internal class "
                f"({', '.join(allowed) or 'none configured'}): public traffic must arrive through the Cloudflare Tunnel. "
                "Remove the Ingress, or list the class under internalIngressClasses if it only serves the private network."
            )
    spec = pod_spec(args.resource_type, args.props)
    if spec is not None:
        _no_host_ports(spec, object_name(args.props), report_violation)


def _no_host_ports(spec, name: str, report_violation) -> None:
    """A pod on the node's network, or with a hostPort, listens on the node's own addresses."""
    if spec.get("hostNetwork"):
        report_violation(
            f"{name} runs its pods with hostNetwork: they listen on the node's addresses, outside the cluster network. "
            "Remove hostNetwork; public traffic arrives through the Cloudflare Tunnel."
        )
    for container in containers(spec):
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                report_violation(
                    f"{name}: container {container.get('name')!r} maps port {port.get('containerPort')} to hostPort "
                    f"{port['hostPort']} on its node. Remove the hostPort; public traffic arrives through the Cloudflare Tunnel."
                )


no_public_entry = ResourceValidationPolicy(
    name="no-public-entry",
    description="No Service of type LoadBalancer or NodePort or with externalIPs, no Ingress of a public class, no pod on the "
                "node's network or with a hostPort: the tunnel is the only way in.",
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={"internalIngressClasses": {"type": "array", "items": {"type": "string"}, "default": []}}
    ),
    validate=_no_public_entry,
)

POLICIES = [no_public_entry]
