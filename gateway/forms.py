"""The few text fields the gateway needs from a multipart/form-data body (the audio routes), and
fields added to one.

The body is already in memory, held to max_body_bytes like any other; this only finds the parts
by their boundary (bytes.find, so an audio file of megabytes costs a scan, not a copy) and reads
the small named ones. A part whose headers cannot be read ends the search: the upstream judges
such a body itself.
"""

from __future__ import annotations

import re

from aiohttp.helpers import parse_mimetype

# RFC 2046 section 5.1.1: what a boundary may hold (so it goes upstream inside quotes as it is).
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)
_FILENAME = re.compile(rb'\bfilename\*?=', re.IGNORECASE)
# A form field the gateway reads is a model name or a flag: anything longer is not one of those.
_MAX_FIELD_BYTES = 1024


def boundary(content_type: str) -> bytes | None:
    """The boundary of a multipart/form-data Content-Type, or None if it is not one."""
    mimetype = parse_mimetype(content_type)
    value = mimetype.parameters.get("boundary", "")
    if (mimetype.type, mimetype.subtype) != ("multipart", "form-data") or not _BOUNDARY.fullmatch(value):
        return None
    return value.encode("ascii")


def text_fields(body: bytes, boundary_: bytes, names: frozenset[str]) -> dict[str, str]:
    """The named text fields (not files) of the form, each by its last value (as Starlette reads them)."""
    delimiter = b"--" + boundary_
    fields: dict[str, str] = {}
    position = body.find(delimiter)
    while position >= 0:
        start = position + len(delimiter)
        if body.startswith(b"--", start):  # the close delimiter
            break
        head_end = body.find(b"\r\n\r\n", start)
        following = body.find(b"\r\n" + delimiter, start)
        if head_end < 0 or following < 0 or head_end > following:
            break
        head = body[start:head_end]
        found = _NAME.search(head)
        if found is not None and not _FILENAME.search(head):
            name = found.group(1).decode("utf-8", "replace")
            value = body[head_end + 4:following]
            if name in names and len(value) <= _MAX_FIELD_BYTES:
                fields[name] = value.decode("utf-8", "replace")
        position = following + 2
    return fields


def with_fields(body: bytes, boundary_: bytes, fields: dict[str, str]) -> bytes | None:
    """The form with `fields` added before its close delimiter (a later value wins); None if it has none."""
    close = body.rfind(b"\r\n--" + boundary_ + b"--")
    if close < 0:
        return None
    parts = b"".join(b'\r\n--%b\r\nContent-Disposition: form-data; name="%b"\r\n\r\n%b' % (
        boundary_, name.encode("ascii"), value.encode("ascii")) for name, value in fields.items())
    return body[:close] + parts + body[close:]
