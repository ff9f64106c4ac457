"""SecretDelivery: puts secrets from AWS Secrets Manager into one cluster's namespace.

`direct`: Pulumi writes the Kubernetes Secret from its own (secret) outputs.
`external-secrets`: External Secrets Operator copies the AWS secret into the namespace; Pulumi
writes only an `ExternalSecret` per Kubernetes Secret and one `SecretStore`. With an OIDC
provider (EKS IRSA), the store authenticates as an IAM role that may read this cluster's secrets
and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.kube import SecretKey, object_labels
from components.secrets.vault import SecretRef

ESO_API_VERSION = "external-secrets.io/v1"
STORE_NAME = "llm-edge-aws"
STORE_SERVICE_ACCOUNT = "llm-edge-secrets-reader"


@dataclass(frozen=True)
class SecretDeliveryArgs:
    mode: Literal["direct", "external-secrets"]
    namespace: pulumi.Input[str]
    namespace_name: str
    instance: str
    # Kubernetes Secret name -> data key -> source.
    secrets: dict[str, dict[str, SecretRef]]
    region: str | None = None
    refresh_interval: str = "1h"
    oidc_provider_arn: str | None = None
    kms_key_id: str | None = None
    role_name: str = ""


class SecretDelivery(pulumi.ComponentResource):
    # Resources a workload must wait for before it can mount its Secrets.
    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: SecretDeliveryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llm-edge:secrets:SecretDelivery", name, None, opts)
        self._name, self._args = name, args
        self.ready = self._direct() if args.mode == "direct" else self._external()
        self.register_outputs({})

    def fingerprint(self, keys: Sequence[SecretKey]) -> pulumi.Output[str] | None:
        """What a pod template carries so that a new value of any of these keys restarts its pods:
        a hash of the AWS versions behind them (names only, no secret material). With direct
        delivery Pulumi writes the new value before the Deployment changes. None with
        external-secrets: the operator copies a new value on its own schedule (refreshInterval),
        after `pulumi up`, and pods restarted before it would start with the old value."""
        if self._args.mode != "direct" or not keys:
            return None
        versions = [self._args.secrets[key.secret_name][key.key].version for key in keys]
        return pulumi.Output.all(*versions).apply(
            lambda found: hashlib.sha256("\n".join(sorted(map(str, found))).encode()).hexdigest()[:16])

    def _metadata(self, secret_name: str) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=secret_name,
            namespace=self._args.namespace,
            labels=object_labels("llm-edge-secrets", self._args.instance, "secrets"),
        )

    def _direct(self) -> list[pulumi.Resource]:
        return [
            k8s.core.v1.Secret(
                f"{self._name}-{secret_name}",
                k8s.core.v1.SecretInitArgs(
                    metadata=self._metadata(secret_name),
                    type="Opaque",
                    string_data={key: pulumi.Output.secret(ref.value) for key, ref in data.items()},
                ),
                pulumi.ResourceOptions(parent=self),
            )
            for secret_name, data in self._args.secrets.items()
        ]

    def _external(self) -> list[pulumi.Resource]:
        args = self._args
        assert args.region is not None, "the stack config requires secrets.region with external-secrets delivery"
        aws_spec: dict = {"service": "SecretsManager", "region": args.region}
        store_deps: list[pulumi.Resource] = []
        if args.oidc_provider_arn:
            account = self._reader_service_account(args.oidc_provider_arn, args.region)
            store_deps.append(account)
            aws_spec["auth"] = {"jwt": {"serviceAccountRef": {"name": STORE_SERVICE_ACCOUNT}}}
        store = k8s.apiextensions.CustomResource(
            f"{self._name}-store",
            api_version=ESO_API_VERSION,
            kind="SecretStore",
            metadata=self._metadata(STORE_NAME),
            spec={"provider": {"aws": aws_spec}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=store_deps),
        )
        external = [
            k8s.apiextensions.CustomResource(
                f"{self._name}-{secret_name}",
                api_version=ESO_API_VERSION,
                kind="ExternalSecret",
                metadata=self._metadata(secret_name),
                spec={
                    "refreshInterval": args.refresh_interval,
                    "secretStoreRef": {"name": STORE_NAME, "kind": "SecretStore"},
                    "target": {"name": secret_name, "creationPolicy": "Owner"},
                    "data": [
                        {
                            "secretKey": key,
                            "remoteRef": {"key": ref.aws_name, **({"property": ref.property} if ref.property else {})},
                        }
                        for key, ref in data.items()
                    ],
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[store]),
            )
            for secret_name, data in args.secrets.items()
        ]
        return [store, *external]

    def _reader_service_account(self, oidc_provider_arn: str, region: str) -> k8s.core.v1.ServiceAccount:
        """An IAM role that only this namespace's reader account may assume, reading only our secrets."""
        args = self._args
        issuer = oidc_provider_arn.split(":oidc-provider/", 1)[1]
        subject = f"system:serviceaccount:{args.namespace_name}:{STORE_SERVICE_ACCOUNT}"
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{self._name}-reader",
            aws.iam.RoleArgs(
                name=args.role_name,
                description=f"External Secrets reader for {args.instance}",
                assume_role_policy=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Federated": oidc_provider_arn},
                                "Action": "sts:AssumeRoleWithWebIdentity",
                                "Condition": {
                                    "StringEquals": {f"{issuer}:sub": subject, f"{issuer}:aud": "sts.amazonaws.com"}
                                },
                            }
                        ],
                    }
                ),
            ),
            child,
        )
        arns = [ref.aws_arn for data in args.secrets.values() for ref in data.values()]
        aws.iam.RolePolicy(
            f"{self._name}-reader-policy",
            aws.iam.RolePolicyArgs(
                role=role.id,
                policy=pulumi.Output.all(*arns).apply(lambda resolved: json.dumps(_read_policy(resolved, args.kms_key_id, region))),
            ),
            child,
        )
        return k8s.core.v1.ServiceAccount(
            f"{self._name}-reader",
            k8s.core.v1.ServiceAccountInitArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=STORE_SERVICE_ACCOUNT,
                    namespace=args.namespace,
                    labels=object_labels("llm-edge-secrets", args.instance, "secrets"),
                    annotations={"eks.amazonaws.com/role-arn": role.arn},
                ),
                automount_service_account_token=False,
            ),
            child,
        )


def _read_policy(secret_arns: list[str], kms_key_arn: str | None, region: str) -> dict:
    statements: list[dict[str, Any]] = [
        {
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": sorted(set(secret_arns)),
        }
    ]
    if kms_key_arn:
        # Decrypt only on behalf of Secrets Manager, never directly.
        statements.append(
            {
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}
