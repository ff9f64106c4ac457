"""Config validation (one line per problem, naming the field) and `keys new`."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from gateway.config import ClientSettings, ConfigError, parse_config, resolve_secrets
from tests.gateway.harness import ROOT, sha256

HASH = sha256("k")


def valid() -> dict:
    return {"models": {"llama-8b": {"upstreams": ["http://10.0.0.5:8000"]}},
            "clients": [{"name": "webapp", "key_sha256": HASH}]}


def problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


def run_gateway(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=20, env=env)


def test_defaults():
    config = parse_config(valid())
    assert config.listen == "0.0.0.0:8080" and config.metrics_listen == "0.0.0.0:9090"
    assert config.max_body_bytes == 4 * 1024 * 1024
    assert (config.upstream_connect_timeout_s, config.upstream_read_timeout_s) == (5.0, 300.0)
    assert (config.drain_grace_s, config.drain_delay_s) == (30.0, 5.0)
    assert (config.health.failures, config.health.cooldown_s) == (3, 10.0)
    assert config.clients[0].models == ["*"] and config.clients[0].rpm is None


def test_every_problem_is_reported_with_its_field_path():
    data = valid()
    data["listn"] = "x"
    data["models"]["llama-8b"]["upstreams"] = ["10.0.0.5:8000"]
    data["models"]["bad"] = {"upstreams": ["http://h:1/v1"], "upstream_key_env": "not a name"}
    data["clients"] = [
        {"name": "a", "key_sha256": HASH, "key_sha256_env": "A_HASH"},
        {"name": "b", "key_sha256": "ABC", "rpm": 0},
        {"name": "c", "key_sha256_env": "C_HASH", "models": ["nope"]},
    ]
    data["cors_origins"] = ["*", "https://app.example.com/"]
    found = problems(data)
    expected_prefixes = [
        "listn:", "models.llama-8b.upstreams[0]:", "models.bad.upstreams[0]:", "models.bad.upstream_key_env:",
        "clients[0]:", "clients[1].key_sha256:", "clients[1].rpm:", "cors_origins[0]:", "cors_origins[1]:",
    ]
    for prefix in expected_prefixes:
        assert any(line.startswith(prefix) for line in found), (prefix, found)
    assert all("\n" not in line for line in found)


def test_cross_field_problems():
    data = valid()
    data["clients"].append({"name": "webapp", "key_sha256": sha256("other"), "models": ["gpt-9"]})
    data["drain_delay_s"] = 40
    found = problems(data)
    assert "clients[1].name: duplicate client name 'webapp'" in found
    assert "clients[1].models: unknown model 'gpt-9' (not under models:)" in found
    assert "drain_delay_s must be shorter than drain_grace_s" in found


def test_secrets_come_from_the_environment():
    data = valid()
    data["clients"] = [{"name": "webapp", "key_sha256_env": "WEBAPP_KEY_SHA256"}]
    data["models"]["llama-8b"]["upstream_key_env"] = "VLLM_API_KEY"
    config = parse_config(data)
    secrets = resolve_secrets(config, {"WEBAPP_KEY_SHA256": HASH.upper(), "VLLM_API_KEY": "s3cret"})
    assert secrets.client_hashes == {"webapp": HASH}
    assert secrets.upstream_keys == {"llama-8b": "s3cret"}
    with pytest.raises(ConfigError) as caught:
        resolve_secrets(config, {"WEBAPP_KEY_SHA256": "xyz"})
    assert caught.value.problems == [
        "clients[0].key_sha256_env: environment variable WEBAPP_KEY_SHA256 must hold 64 hex characters",
        "models.llama-8b.upstream_key_env: environment variable VLLM_API_KEY is not set",
    ]


def test_upstream_key_that_would_break_its_header_line_is_refused():
    data = valid()
    data["models"]["llama-8b"]["upstream_key_env"] = "VLLM_API_KEY"
    config = parse_config(data)
    for bad in ("s3cret\n", "s3cret\r\nX-Injected: 1", "two words", "clé"):
        with pytest.raises(ConfigError) as caught:
            resolve_secrets(config, {"VLLM_API_KEY": bad})
        assert caught.value.problems == [
            "models.llama-8b.upstream_key_env: environment variable VLLM_API_KEY holds spaces, line breaks "
            "or non-ASCII characters (a trailing newline from a file?)"]


def test_two_clients_with_one_key_are_refused():
    data = valid()
    data["clients"].append({"name": "other", "key_sha256": HASH})
    with pytest.raises(ConfigError) as caught:
        resolve_secrets(parse_config(data), {})
    assert len(caught.value.problems) == 2
    assert all("key hash shared" in line for line in caught.value.problems)


def test_invalid_config_stops_start_up_without_traceback(tmp_path):
    data = valid()
    data["clients"][0]["key_sha256"] = "nothex"
    data["models"]["llama-8b"]["upstream_key_env"] = "MISSING_UPSTREAM_KEY"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    result = run_gateway("--config", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "config error: clients[0].key_sha256: must be 64 lowercase hex characters "
        "(the SHA-256 of the key; see `python -m gateway keys new`)",
    ]


def test_missing_env_and_unreadable_files_are_config_errors(tmp_path):
    data = valid()
    data["models"]["llama-8b"]["upstream_key_env"] = "MISSING_UPSTREAM_KEY"
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(data))
    result = run_gateway("--config", str(path))
    assert result.returncode == 2
    assert "models.llama-8b.upstream_key_env: environment variable MISSING_UPSTREAM_KEY is not set" in result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: [\n")
    result = run_gateway("--config", str(broken))
    assert result.returncode == 2 and "not valid YAML" in result.stderr and "Traceback" not in result.stderr
    result = run_gateway("--config", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2 and "cannot read config file" in result.stderr


def test_keys_new_prints_a_key_and_a_config_entry_with_its_hash():
    result = run_gateway("keys", "new", "webapp")
    assert result.returncode == 0
    key, _, entry = result.stdout.partition("\n")
    assert key.startswith("sk-llmedge-") and len(key) > 40
    client = ClientSettings.model_validate(yaml.safe_load(entry)[0])
    assert client.name == "webapp"
    assert client.key_sha256 == sha256(key)
    assert key not in entry
    second = run_gateway("keys", "new", "webapp").stdout.partition("\n")[0]
    assert second != key
