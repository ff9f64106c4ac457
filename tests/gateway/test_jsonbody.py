"""gateway/jsonbody.py reads every body as json.loads does (vLLM's reading), value and type, or
fails as json.loads fails."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import jsonbody
from tests.gateway.harness import KEYS, raw

MESSAGES = [{"role": "user", "content": "hi"}]


def typed(value: object) -> object:
    """The value with every leaf's type beside it (1 and 1.0 and True differ; NaN equals NaN)."""
    if isinstance(value, dict):
        return ("dict", [(key, typed(item)) for key, item in value.items()])  # order kept: re-encoding keeps it
    if isinstance(value, list):
        return ("list", [typed(item) for item in value])
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value.hex())  # -0.0 and 0.0 apart
    return (type(value).__name__, value)


def outcome(read, body: bytes) -> object:
    try:
        return typed(read(body))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return ("error", type(exc).__name__)


def assert_read_as_json_reads(body: bytes) -> None:
    assert outcome(jsonbody.loads, body) == outcome(json.loads, body)


# Where orjson and json part ways: what orjson refuses, and integers it would make floats of.
EDGES = [
    b'{"a": NaN, "b": Infinity, "c": -Infinity}',
    b'{"a": 1e400}', b'{"a": -1e400}',
    b'{"a": 123456789012345678901234567890}',
    b'{"a": 18446744073709551615}', b'{"a": 18446744073709551616}',
    b'{"a": -9223372036854775808}', b'{"a": -9223372036854775809}',
    b'{"a": 9999999999999999999}', b'{"a": 99999999999999999999.5}',
    b'{"a": "\\ud800"}', b'{"a": "\\udc00x"}', b'{"a": "\\ud83d\\ude00"}',
    b'\xef\xbb\xbf{"a": 1}',
    '{"a": 1}'.encode("utf-16"), '{"a": 1}'.encode("utf-16-le"), '{"a": 1}'.encode("utf-32"),
    b'{"a": "\xff"}', b'{"a": "\xed\xa0\x80"}',
    b'{"a": 1, "a": 2, "b": 3}', b'{"a": -0}', b'{"a": -0.0}', b'{"a": 0.1e1}', b'{"a": 1E+2}',
    b'{"a": "\\u0000\\t"}', b'{"a": "tab\there"}', b'{"a": 1}\x00', b' {"a": 1} \n', b'{"a": 01}',
    b"[" * 2000 + b"]" * 2000, b"[" * 900 + b"]" * 900,
    b"", b"nul", b"true", b"1", b'"x"', b"{}", b"[]",
]


@pytest.mark.parametrize("body", EDGES, ids=range(len(EDGES)))
def test_bodies_where_orjson_and_json_differ_are_read_as_json_reads_them(body):
    assert_read_as_json_reads(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | st.text()
    | st.integers() | st.integers(min_value=-(2**70), max_value=2**70),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(value=json_values, ascii_only=st.booleans())
def test_any_encoded_value_is_read_as_json_reads_it(value, ascii_only):
    # Not ensure_ascii: lone surrogates cannot be encoded in UTF-8 and are left out by surrogatepass.
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert_read_as_json_reads(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=400, deadline=None)
@given(body=st.binary(max_size=64) | st.text(alphabet='{}[]":,0123456789.eE+-ntrufalsNIy\\ u', max_size=40).map(str.encode))
def test_any_bytes_are_read_or_refused_as_json_does(body):
    assert_read_as_json_reads(body)


def test_a_body_re_encoded_upstream_keeps_its_big_integers_and_nan(gateway, stub):
    # A stream with the client's own stream_options is re-encoded to ask for usage: what was read
    # is what goes upstream, so a 20-digit seed must not come back as a float (orjson alone reads it so).
    seed = 2**70 + 1
    body = {"model": "chat", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True},
            "seed": seed, "temperature": float("nan")}
    status, _, _ = raw(gateway, "/v1/chat/completions", json.dumps(body).encode(),
                       headers={"Authorization": f"Bearer {KEYS['full']}", "Content-Type": "application/json"})
    assert status == 200
    sent = stub.state.seen[-1].body
    assert sent["seed"] == seed and type(sent["seed"]) is int
    assert math.isnan(sent["temperature"])
