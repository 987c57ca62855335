"""A protocol request's arguments: the path's key, conditions, byte ranges, query parameters.

Owns: turning raw request parts into validated values, raising BadRequest or
InvalidKey with a message that names the offending header or parameter.

Must not: call a connector or build responses.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from ..errors import BadRequest
from ..interface import RangeSpec, WriteCondition
from ..keys import decode_key, validate_prefix

API = "/v1"
OBJECTS = f"{API}/objects/"
XATTRS = f"{API}/xattrs/"
XATTR_NAME = re.compile(r"^[a-z0-9_]{1,64}$")

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def split_target(raw_path: str) -> tuple[str, dict[str, str]]:
    """Split the raw request target into its still-encoded path and decoded query."""
    path, _, query = raw_path.partition("?")
    try:
        params = dict(
            parse_qsl(query, keep_blank_values=True, strict_parsing=False, errors="strict")
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed query string: {exc}") from None
    return path, params


def object_key(encoded: str, *, allow_empty: bool = False) -> str:
    return decode_key(encoded, allow_empty=allow_empty)


def parse_etag(value: str) -> str:
    """An ETag header value without quotes or weak marker."""
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value:
        raise BadRequest("empty entity tag in a conditional header")
    return value


def quote_etag(etag: str) -> str:
    return f'"{etag}"'


def write_condition(if_match: str | None, if_none_match: str | None) -> WriteCondition:
    if if_match is not None and if_none_match is not None:
        raise BadRequest("If-Match and If-None-Match cannot be combined on a write")
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise BadRequest("If-None-Match on a write must be '*' (create-only)")
        return WriteCondition(if_none_match=True)
    if if_match is not None:
        return WriteCondition(if_match=parse_etag(if_match))
    return WriteCondition()


def byte_range(header: str | None) -> RangeSpec | None:
    """One ``bytes=`` range; anything unparseable or multi-range means the whole object."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if first == "" and last == "":
        return None
    if first == "":
        return RangeSpec(first=None, last=int(last))
    spec = RangeSpec(first=int(first), last=int(last) if last else None)
    if spec.last is not None and spec.last < int(first):
        return None  # invalid per RFC 9110: ignore the header
    return spec


def list_params(params: dict[str, str]) -> tuple[str, str | None, str | None, int]:
    prefix = validate_prefix(decode_key_param(params.get("prefix", "")))
    delimiter = params.get("delimiter", "/")
    if delimiter not in ("/", ""):
        raise BadRequest("delimiter must be '/' or empty")
    raw_limit = params.get("limit", "1000")
    try:
        limit = int(raw_limit)
    except ValueError:
        raise BadRequest(f"limit must be an integer, got {raw_limit!r}") from None
    if not 1 <= limit <= 1000:
        raise BadRequest(f"limit must be between 1 and 1000, got {limit}")
    token = params.get("page_token") or None
    return prefix, delimiter or None, token, limit


def decode_key_param(value: str) -> str:
    """Query parameters arrive already percent-decoded; only validate the text."""
    if "\x00" in value:
        raise BadRequest("a key parameter contains a NUL character")
    return value


def xattr_name(params: dict[str, str], *, required: bool) -> str | None:
    name = params.get("name")
    if name is None:
        if required:
            raise BadRequest("the 'name' query parameter is required")
        return None
    if name.startswith("user.asya."):
        name = name[len("user.asya.") :]
    if not XATTR_NAME.match(name):
        raise BadRequest(f"invalid attribute name {name!r}")
    return name


def flag(params: dict[str, str], name: str) -> bool:
    """A boolean query parameter: ``true``/``1``, or ``false``/``0``/absent."""
    value = params.get(name, "false").lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0", ""):
        return False
    raise BadRequest(f"{name} must be true or false, got {value!r}")
