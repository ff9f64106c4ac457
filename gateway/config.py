"""The gateway's YAML config: a pydantic model, loaded once at start-up.

Secrets never live in the file itself: client key hashes may come from env vars
(`key_sha256_env`) and upstream keys always do (`upstream_key_env`), so the file can be
a ConfigMap and the secrets Kubernetes Secrets mounted as env vars.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]


class ConfigError(Exception):
    """Every problem found in a config, one line each (`field.path: message`)."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    # A misspelt field must be an error, not a silently ignored default.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid environment variable name")
    return value


EnvName = Annotated[str, AfterValidator(_check_env_name)]


def _check_upstream(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} must be an http:// or https:// base URL such as http://10.0.0.5:8000")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{url!r} must have no path, query or credentials (the client path /v1/... is appended)")
    try:
        _ = parts.port  # urlsplit checks the port only when it is read
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    return url


UpstreamURL = Annotated[str, AfterValidator(_check_upstream)]


def _check_origin(origin: str) -> str:
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or origin != f"{parts.scheme}://{parts.netloc}":
        raise ValueError(f"{origin!r} must be an exact origin such as https://app.example.com (no '*', path or trailing slash)")
    return origin


Origin = Annotated[str, AfterValidator(_check_origin)]


class HealthSettings(_Strict):
    failures: PositiveInt = 3
    cooldown_s: PositiveFloat = 10.0


class ModelSettings(_Strict):
    upstreams: list[UpstreamURL] = Field(min_length=1)
    upstream_key_env: EnvName | None = None
    # How chat, completions and responses requests pick among the model's addresses
    # (gateway/routing.py); every other route, and prompts shorter than a block, go by least outstanding.
    routing: Literal["prefix_affinity", "least_outstanding"] = "prefix_affinity"
    # Bounded load: an address is passed over while one more request would take it above
    # ceil(factor x (in flight + 1) / addresses). 1 would allow no imbalance at all.
    routing_load_factor: Annotated[float, Field(ge=1.0, le=10.0)] = 1.25
    # The prompt is hashed in blocks of this many tokens (4 bytes of text each: the gateway has no
    # tokenizer). vLLM caches blocks of 16 tokens on GPUs (128 in its CPU build); 64 matches
    # shared prefixes at 4 of its GPU blocks for a quarter of the hashing.
    routing_block_tokens: Annotated[int, Field(ge=1, le=4096)] = 64
    # Block hashes remembered per address (LRU); about 180 bytes each (tracemalloc, CPython 3.11).
    routing_index_blocks: Annotated[int, Field(ge=1, le=10_000_000)] = 16384


def _check_store_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError("must be a redis:// or rediss:// URL such as redis://limits.llm-edge.svc:6379/0")
    if parts.path.strip("/") and not parts.path.strip("/").isdigit() or parts.query or parts.fragment:
        raise ValueError("must have no path other than a database number (/0) and no query")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return url


StoreURL = Annotated[str, AfterValidator(_check_store_url)]


class SharedLimitsSettings(_Strict):
    """rpm and tpm kept in Redis or Valkey, shared by every replica that points at the same store."""

    url: StoreURL | None = None
    # The URL read from the environment at start-up instead (it may carry a user and password).
    url_env: EnvName | None = None
    password_env: EnvName | None = None
    # Longest wait for the store on a request; then this request, and the following ones until
    # the store answers again, are decided by the local share.
    timeout_ms: Annotated[float, Field(gt=0, le=1000)] = 20.0
    # While the store cannot be reached each replica allows limit / fallback_replicas (rounded up).
    fallback_replicas: PositiveInt = 1
    # Keys are <key_prefix><client name>:rpm and :tpm: gateways with the same prefix share budgets.
    key_prefix: Annotated[str, Field(pattern=r"^[!-~]{1,100}$")] = "llm-edge:limits:"

    @model_validator(mode="after")
    def _one_url_source(self) -> SharedLimitsSettings:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        return self


class ClientSettings(_Strict):
    name: str = Field(min_length=1)
    key_sha256: str | None = None
    key_sha256_env: EnvName | None = None
    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None

    @field_validator("key_sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is not None and not _HEX_SHA256.fullmatch(value):
            raise ValueError("must be 64 lowercase hex characters (the SHA-256 of the key; see `python -m gateway keys new`)")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> ClientSettings:
        if (self.key_sha256 is None) == (self.key_sha256_env is None):
            raise ValueError("give exactly one of key_sha256 and key_sha256_env")
        return self


class GatewayConfig(_Strict):
    listen: str = "0.0.0.0:8080"
    metrics_listen: str = "0.0.0.0:9090"
    models: dict[str, ModelSettings] = Field(min_length=1)
    clients: list[ClientSettings] = Field(min_length=1)
    cors_origins: list[Origin] = Field(default_factory=list)
    max_body_bytes: PositiveInt = 4 * 1024 * 1024
    upstream_connect_timeout_s: PositiveFloat = 5.0
    upstream_read_timeout_s: PositiveFloat = 300.0
    # Cloudflare answers 524 when a reply has not started within its proxy read timeout (100 s on
    # non-Enterprise plans: https://developers.cloudflare.com/support/troubleshooting/http-status-codes/cloudflare-5xx-errors/error-524/),
    # while the GPU keeps generating for nobody. A non-streaming request that came through
    # Cloudflare (it carries Cf-Ray) is answered 504 `edge_timeout` after this instead, and the
    # upstream request is cancelled. Streams are never cut: each event restarts Cloudflare's clock.
    edge_first_byte_timeout_s: PositiveFloat | None = None
    upstream_dns_refresh_s: PositiveFloat = 10.0
    client_header_timeout_s: PositiveFloat = 10.0
    client_body_timeout_s: PositiveFloat = 60.0
    client_write_timeout_s: PositiveFloat = 60.0
    client_keepalive_timeout_s: PositiveFloat = 75.0
    client_max_connections: PositiveInt = 4096
    drain_grace_s: PositiveFloat = 30.0
    drain_delay_s: Annotated[float, Field(ge=0)] = 5.0
    health: HealthSettings = HealthSettings()
    shared_limits: SharedLimitsSettings | None = None

    @field_validator("listen", "metrics_listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_listen(value)
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> GatewayConfig:
        problems = []
        if self.drain_delay_s >= self.drain_grace_s:
            problems.append("drain_delay_s must be shorter than drain_grace_s")
        seen: set[str] = set()
        for index, client in enumerate(self.clients):
            if client.name in seen:
                problems.append(f"clients[{index}].name: duplicate client name {client.name!r}")
            seen.add(client.name)
            for model in client.models:
                if model != "*" and model not in self.models:
                    problems.append(f"clients[{index}].models: unknown model {model!r} (not under models:)")
        if problems:
            raise ValueError("\n".join(problems))  # parse_config splits them again
        return self


def split_listen(value: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` into its parts; ValueError names what is wrong."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} must be host:port, e.g. 0.0.0.0:8080")
    return host, int(port)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class ResolvedSecrets(BaseModel):
    """What start-up reads from the environment: never logged, never written anywhere."""

    client_hashes: dict[str, str]  # client name -> hex SHA-256 of its key
    upstream_keys: dict[str, str]  # model name -> upstream bearer key
    limit_store_url: str | None = None  # shared_limits: the store's URL (from url or url_env)
    limit_store_password: str | None = None


def _field_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def parse_config(data: object) -> GatewayConfig:
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        problems: list[str] = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            path = _field_path(error["loc"])
            problems.extend(f"{path}: {part}" if path and not part.startswith(path) else part for part in message.split("\n"))
        raise ConfigError(problems) from None


def load_config(path: str) -> GatewayConfig:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file ({exc.strerror})"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({' '.join(str(exc).split())})"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: must be a YAML mapping with models: and clients:"])
    return parse_config(data)


def resolve_secrets(config: GatewayConfig, environ: Mapping[str, str] | None = None) -> ResolvedSecrets:
    """Read key hashes and upstream keys named by *_env fields; ConfigError lists every missing one."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    client_hashes = _client_hashes(config, environ, problems)
    upstream_keys = _upstream_keys(config, environ, problems)
    store_url, store_password = _limit_store(config.shared_limits, environ, problems)
    if problems:
        raise ConfigError(problems)
    return ResolvedSecrets(client_hashes=client_hashes, upstream_keys=upstream_keys,
                           limit_store_url=store_url, limit_store_password=store_password)


def _limit_store(settings: SharedLimitsSettings | None, environ: Mapping[str, str],
                 problems: list[str]) -> tuple[str | None, str | None]:
    if settings is None:
        return None, None
    url = settings.url
    if settings.url_env is not None:
        url = environ.get(settings.url_env, "").strip()
        if not url:
            problems.append(f"shared_limits.url_env: environment variable {settings.url_env} is not set")
        else:
            try:
                _check_store_url(url)
            except ValueError as exc:  # the value itself may hold a password: never repeated
                problems.append(f"shared_limits.url_env: environment variable {settings.url_env} {exc}")
                url = None
    password = None
    if settings.password_env is not None:
        password = environ.get(settings.password_env, "")
        if not password:
            problems.append(f"shared_limits.password_env: environment variable {settings.password_env} is not set")
    return url, password or None


def _client_hashes(config: GatewayConfig, environ: Mapping[str, str], problems: list[str]) -> dict[str, str]:
    hashes = {}
    for index, client in enumerate(config.clients):
        if client.key_sha256 is not None:
            hashes[client.name] = client.key_sha256
            continue
        assert client.key_sha256_env is not None, "one of the two is set (ClientSettings)"
        value = environ.get(client.key_sha256_env, "").strip().lower()
        if not value:
            problems.append(f"clients[{index}].key_sha256_env: environment variable {client.key_sha256_env} is not set")
        elif not _HEX_SHA256.fullmatch(value):
            problems.append(f"clients[{index}].key_sha256_env: environment variable {client.key_sha256_env} must hold 64 hex characters")
        else:
            hashes[client.name] = value
    values = list(hashes.values())
    for index, client in enumerate(config.clients):
        if client.name in hashes and values.count(hashes[client.name]) > 1:
            problems.append(f"clients[{index}]: key hash shared with another client (each client needs its own key)")
    return hashes


def _upstream_keys(config: GatewayConfig, environ: Mapping[str, str], problems: list[str]) -> dict[str, str]:
    keys = {}
    for name, model in config.models.items():
        if model.upstream_key_env is None:
            continue
        value = environ.get(model.upstream_key_env, "")
        if not value:
            problems.append(f"models.{name}.upstream_key_env: environment variable {model.upstream_key_env} is not set")
        elif not _is_header_token(value):
            # It goes into an Authorization header as it is: a line break would start another header.
            problems.append(f"models.{name}.upstream_key_env: environment variable {model.upstream_key_env} holds "
                            "spaces, line breaks or non-ASCII characters (a trailing newline from a file?)")
        else:
            keys[name] = value
    return keys


def _is_header_token(value: str) -> bool:
    return all("!" <= character <= "~" for character in value)
