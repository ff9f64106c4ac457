"""JSON bodies read exactly as Python's json module reads them, at orjson's speed. That is vLLM's
reading: FastAPI parses a route's JSON body with Starlette's Request.json() (fastapi 0.136.3
routing.py:415), which is json.loads (starlette 1.10.0 requests.py:267).

orjson parses a small body in a fifth of json.loads' time (about 12 µs a request at c=32 here,
docs/performance.md). Where the two differ it falls back to json.loads, so the result is always
json.loads' own:
- orjson refuses what json accepts: NaN and Infinity, numbers that overflow a double, lone
  surrogates, a byte order mark, UTF-16 and UTF-32. Any refusal is read again by json, which
  then either returns its value or raises its own error.
- orjson reads an integer outside [-2**63, 2**64) as a float where json keeps the int. Such an
  integer has at least 19 digits, so a body with a run of 19 digits anywhere (in a string too)
  is read by json alone. The run is looked for with bytes.translate and `in` (about 0.5 ns a
  byte here; a regular expression takes 8).
- Bodies over 8 KiB go to json at once: from there on the scan costs what orjson saves (a long
  prompt is mostly text, which json reads nearly as fast).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_ORJSON_MAX_BYTES = 8 * 1024
# Every digit to "0" and every other byte to a space: a run of 19 digits is then a run of 19 zeros.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGITS = b"0" * 19


def loads(body: bytes) -> Any:
    """json.loads(body); raises what json.loads raises (ValueError, RecursionError)."""
    if len(body) <= _ORJSON_MAX_BYTES and _LONG_DIGITS not in body.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)
