"""External-secrets delivery, the IAM role scoped to this stack, kubeconfig from a secret."""

from __future__ import annotations

import json

import pytest

from tests.conftest import stack_run
from tests.helpers import objects, plain, secret_marked
from tests.variants import EXTERNAL_SECRETS_OVERRIDES


@pytest.fixture(scope="module")
def eso():
    return stack_run("dev", EXTERNAL_SECRETS_OVERRIDES)


def test_no_plain_kubernetes_secret_is_written(eso):
    assert objects(eso, "dev", "Secret") == []


def external_secret(run, name):
    [found] = [o for o in objects(run, "dev", "ExternalSecret") if o["metadata"]["name"] == name]
    return found


def test_external_secret_copies_the_token_from_aws(eso):
    external = external_secret(eso, "cloudflared-token")
    assert external["apiVersion"] == "external-secrets.io/v1"
    spec = external["spec"]
    assert spec["target"]["name"] == "cloudflared-token"
    assert spec["secretStoreRef"] == {"name": "llm-edge-aws", "kind": "SecretStore"}
    assert spec["data"] == [{"secretKey": "token", "remoteRef": {"key": "llm-edge/dev/tunnel-token/dev"}}]


def test_secret_store_authenticates_with_the_irsa_service_account(eso):
    [store] = objects(eso, "dev", "SecretStore")
    aws = store["spec"]["provider"]["aws"]
    assert aws["service"] == "SecretsManager" and aws["region"] == "eu-west-1"
    account_name = aws["auth"]["jwt"]["serviceAccountRef"]["name"]
    [account] = [o for o in objects(eso, "dev", "ServiceAccount") if o["metadata"]["name"] == account_name]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(":role/dev-dev-secrets-reader")


def test_reader_role_trusts_only_that_service_account(eso):
    [role] = eso.of_type("aws:iam/role:Role")
    trust = json.loads(plain(role)["assumeRolePolicy"])
    [statement] = trust["Statement"]
    issuer = "oidc.eks.eu-west-1.amazonaws.com/id/ABC123"
    assert statement["Principal"]["Federated"].endswith(issuer)
    assert statement["Condition"]["StringEquals"] == {
        f"{issuer}:sub": "system:serviceaccount:llm-edge:llm-edge-secrets-reader",
        f"{issuer}:aud": "sts.amazonaws.com",
    }


def test_client_key_hashes_come_from_one_json_secret_by_property(eso):
    external = external_secret(eso, "gateway-client-key-hashes")
    assert external["spec"]["data"] == [
        {"secretKey": "dev-team", "remoteRef": {"key": "llm-edge/dev/gateway/client-key-hashes", "property": "dev-team"}}
    ]


def test_reader_policy_names_only_what_the_cluster_needs_never_plaintext_client_keys(eso):
    [policy] = eso.of_type("aws:iam/rolePolicy:RolePolicy")
    document = json.loads(plain(policy)["policy"])
    [statement] = document["Statement"]
    assert statement["Action"] == ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    arns = eso.outputs["secretArns"]
    assert statement["Resource"] == sorted(
        [arns["tunnel-token/dev"], arns["vllm-api-key"], arns["gateway/client-key-hashes"]]
    )
    assert arns["gateway/clients/dev-team"] not in statement["Resource"]
    assert "*" not in json.dumps(statement["Resource"])


def test_kubeconfig_from_config_is_passed_as_a_secret(eso):
    [provider] = eso.of_type("pulumi:providers:kubernetes")
    assert secret_marked(provider.inputs["kubeconfig"])
    assert "context" not in provider.inputs
