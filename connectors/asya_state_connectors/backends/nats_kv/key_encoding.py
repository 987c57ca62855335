"""Object keys <-> NATS KV keys, reversibly, with ``/`` mapped onto subject tokens.

Owns: the encoding of arbitrary UTF-8 object keys into the characters NATS KV
accepts (``[-/_=.a-zA-Z0-9]``, no leading or trailing ``.``) and back, and
the subject filter that selects every key under a listing prefix.

- Each ``/``-separated segment becomes one subject token, joined with ``.``,
  so ``a/b/`` selects its keys server-side with the filter ``a.b.>``.
- Inside a segment ``-``, ``_``, ASCII letters and digits stay as they are;
  every other character becomes ``=XX`` per UTF-8 byte (uppercase hex), so
  ``history.json`` is stored as ``history=2Ejson`` and ``=`` as ``=3D``.
- Segments are never empty (keys are validated first), so tokens never are.

Must not: accept a stored key it did not produce; ``decode_key`` raises
ValueError for foreign keys so listings can skip them.
"""

from __future__ import annotations

import string

_KEEP = frozenset(string.ascii_letters + string.digits + "-_")
_HEX = frozenset("0123456789ABCDEF")


def encode_segment(segment: str) -> str:
    out: list[str] = []
    for char in segment:
        if char in _KEEP:
            out.append(char)
        else:
            out.extend(f"={byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


def decode_segment(token: str) -> str:
    raw = bytearray()
    index = 0
    while index < len(token):
        char = token[index]
        if char == "=":
            pair = token[index + 1 : index + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise ValueError(f"malformed escape in NATS key token {token!r}")
            byte = int(pair, 16)
            if chr(byte) in _KEEP:
                raise ValueError(f"needless escape in NATS key token {token!r}")
            raw.append(byte)
            index += 3
        elif char in _KEEP:
            raw.append(ord(char))
            index += 1
        else:
            raise ValueError(f"character {char!r} is never produced in a token")
    if not raw:
        raise ValueError("empty NATS key token")
    return raw.decode("utf-8")


def encode_key(key: str) -> str:
    """``a/b c.txt`` -> ``a.b=20c=2Etxt``; ``key`` must be a validated object key."""
    return ".".join(encode_segment(segment) for segment in key.split("/"))


def decode_key(stored: str) -> str:
    """The inverse of ``encode_key``; ValueError for a key this encoding never produces."""
    return "/".join(decode_segment(token) for token in stored.split("."))


def prefix_filter(prefix: str) -> str:
    """The subject filter (relative to the bucket) that covers every key starting with ``prefix``.

    Complete segments narrow the filter; a partial last segment cannot be
    expressed as a wildcard, so it is matched after decoding.
    """
    complete = prefix.split("/")[:-1]
    if not complete:
        return ">"
    return ".".join(encode_segment(segment) for segment in complete) + ".>"
