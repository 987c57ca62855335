"""Key validation and the key <-> URL-path encoding of the wire protocol.

Owns: what a valid key is (relative, ``/``-separated, UTF-8, no ``.``/``..``
or empty segments, no NUL, at most 1024 bytes) and the strict percent-decoding
of keys taken from request paths. Keys never escape the mount: every backend
joins a validated key under its own prefix.

Must not: know about any backend or HTTP framework.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes

from .errors import InvalidKey

MAX_KEY_BYTES = 1024
# Temporary files of the local-directory connector live beside their targets
# under this name prefix; no user key may use it.
RESERVED_SEGMENT_PREFIX = ".asya-tmp-"

_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def validate_key(key: str, *, allow_empty: bool = False) -> str:
    """Return ``key`` unchanged if it is a valid object key, else raise InvalidKey."""
    if key == "":
        if allow_empty:
            return key
        raise InvalidKey("the key is empty", key=key)
    if "\x00" in key:
        raise InvalidKey("the key contains a NUL character", key=key)
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(f"the key is longer than {MAX_KEY_BYTES} bytes", key=key[:64] + "...")
    if key.startswith("/"):
        raise InvalidKey("the key must be relative to the mount", key=key)
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKey(f"the key has an empty, '.' or '..' segment: {key!r}", key=key)
        if segment.startswith(RESERVED_SEGMENT_PREFIX):
            raise InvalidKey(
                f"names starting with {RESERVED_SEGMENT_PREFIX!r} are reserved", key=key
            )
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidKey("the key is not valid UTF-8", key=repr(key)) from exc
    return key


def validate_prefix(prefix: str) -> str:
    """A listing prefix: like a key, but may be empty and may end with ``/``."""
    if prefix == "":
        return prefix
    body = prefix[:-1] if prefix.endswith("/") else prefix
    if body == "":
        raise InvalidKey("a prefix cannot be only '/'", key=prefix)
    # A partial last segment ("sessions/ab") is a valid prefix; only its
    # complete segments must be valid keys.
    validate_key(body)
    return prefix


def decode_key(encoded: str, *, allow_empty: bool = False) -> str:
    """Strictly percent-decode a key taken from a request path and validate it."""
    if _BAD_PERCENT.search(encoded):
        raise InvalidKey("the key has a malformed percent-escape", key=encoded[:200])
    raw = unquote_to_bytes(encoded)
    try:
        key = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidKey("the key is not valid UTF-8", key=encoded[:200]) from exc
    return validate_key(key, allow_empty=allow_empty)


def ancestors(key: str) -> list[str]:
    """The keys a local disk would need to be directories for ``key``: ``a/b/c`` -> ``a``, ``a/b``."""
    parts = key.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def encode_key(key: str) -> str:
    """Percent-encode a key for a request path; ``/`` stays as the separator."""
    return quote(key, safe="/")
