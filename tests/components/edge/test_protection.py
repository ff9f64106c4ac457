"""Edge protection: the zone owner's rate limit and optional Cloudflare Access in front of the API."""

from __future__ import annotations

import json

import pytest

from components.config import ConfigError, parse_stack_config
from tests.conftest import stack_run
from tests.helpers import AWS_SECRET, AWS_SECRET_VERSION, plain, secret_marked
from tests.variants import PROD_ACCESS_OVERRIDES

RULESET = "cloudflare:index/ruleset:Ruleset"
ACCESS_APP = "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication"
ACCESS_POLICY = "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy"
SERVICE_TOKEN = "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken"


def test_prod_rate_limits_the_api_hostname_per_client_ip():
    prod = stack_run("prod")
    [ruleset] = prod.of_type(RULESET)
    inputs = plain(ruleset)
    assert (inputs["kind"], inputs["phase"]) == ("zone", "http_ratelimit")
    [rule] = inputs["rules"]
    # The public hostname, the validation hostnames below it, and the hostname route.
    assert rule["expression"] == (
        '(http.host eq "llm.example.com" or ends_with(http.host, ".llm.example.com")'
        ' or http.host in {"llama-8b.example.com"})'
    )
    assert rule["action"] == "block"
    assert rule["ratelimit"] == {
        "characteristics": ["ip.src", "cf.colo.id"],
        "period": 60,
        "requestsPerPeriod": 600,
        "mitigationTimeout": 60,
    }
    response = rule["actionParameters"]["response"]
    assert response["statusCode"] == 429 and json.loads(response["content"])["error"]["type"] == "rate_limit_exceeded"
    assert prod.of_type(ACCESS_APP) == []


def test_stacks_that_do_not_own_the_zone_have_no_edge_protection():
    assert stack_run("dev").of_type(RULESET) == []


@pytest.fixture(scope="module")
def with_access():
    return stack_run("prod", PROD_ACCESS_OVERRIDES)


def test_access_lets_in_only_the_service_tokens(with_access):
    tokens = {plain(t)["name"]: t for t in with_access.of_type(SERVICE_TOKEN)}
    assert set(tokens) == {"llm-edge llm.example.com batch-jobs", "llm-edge llm.example.com chat-app"}
    [policy] = with_access.of_type(ACCESS_POLICY)
    policy_inputs = plain(policy)
    assert policy_inputs["decision"] == "non_identity"
    # One include per token, each naming that token's id (and nothing broader such as everyone).
    assert all(set(i) == {"serviceToken"} for i in policy_inputs["includes"])
    assert len({i["serviceToken"]["tokenId"] for i in policy_inputs["includes"]}) == len(tokens) == 2
    [app] = with_access.of_type(ACCESS_APP)
    app_inputs = plain(app)
    assert app_inputs["type"] == "self_hosted"
    assert [d["uri"] for d in app_inputs["destinations"]] == ["llm.example.com", "*.llm.example.com", "llama-8b.example.com"]
    assert app_inputs["serviceAuth401Redirect"] is True
    assert [p["precedence"] for p in app_inputs["policies"]] == [1]


def test_service_token_credentials_are_secrets_in_secrets_manager(with_access):
    names = {plain(s)["name"] for s in with_access.of_type(AWS_SECRET)}
    assert {"llm-edge/prod/access-token/batch-jobs", "llm-edge/prod/access-token/chat-app"} <= names
    version = with_access.one(AWS_SECRET_VERSION, "vault-access-token-chat-app-value")
    assert secret_marked(version.inputs["secretString"])
    credentials = json.loads(plain(version)["secretString"])
    assert set(credentials) == {"CF-Access-Client-Id", "CF-Access-Client-Secret"}
    assert credentials["CF-Access-Client-Secret"]


def test_edge_protection_needs_the_zone():
    raw = {
        "cloudflare": {"accountId": "0" * 32, "zone": "example.com"},
        "publicHostname": "llm.example.com",
        "clusters": {"a": {"context": "a"}},
        "edge": {"rateLimit": {"requestsPerPeriod": 10}, "access": {"serviceTokens": ["ci"]}},
    }
    with pytest.raises(ConfigError) as error:
        parse_stack_config("staging", raw)
    message = str(error.value)
    assert "llm-edge:edge.rateLimit: is zone-level: only the stack with edge.manageZone: true may set it" in message
    assert "llm-edge:edge.access: is zone-level" in message


def test_rate_limit_period_must_be_one_cloudflare_accepts():
    raw = {
        "cloudflare": {"accountId": "0" * 32, "zone": "example.com"},
        "publicHostname": "llm.example.com",
        "clusters": {"a": {"context": "a"}},
        "edge": {"manageZone": True, "rateLimit": {"periodSeconds": 30}},
    }
    with pytest.raises(ConfigError, match="llm-edge:edge.rateLimit.periodSeconds"):
        parse_stack_config("staging", raw)
