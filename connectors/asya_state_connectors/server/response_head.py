"""HTTP/1.1 response heads of the connector server: status line, header lines, dates.

Owns: encoding a response head (reason phrases, ``Connection`` for a
closing or a kept-alive HTTP/1.0 answer), refusing any header value that
could split it (CR, LF, NUL or another control character, non-ASCII) with
``UnsafeHeader``, and the IMF-fixdate of ``Last-Modified``.

Must not: touch sockets, parse requests or know the protocol's paths.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from http import HTTPStatus

_REASONS = {status.value: status.phrase for status in HTTPStatus}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def reason(status: int) -> str:
    return _REASONS.get(status, "Unknown")


def http_date(seconds: float) -> str:
    """An IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``), independent of the locale."""
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class UnsafeHeader(ValueError):
    """A response header value that would not stay one header line; nothing was sent."""


# Control characters other than the CR LF that end each line; tabs too: no value we send has one.
_CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")


def head_bytes(status: int, headers: Mapping[str, str], close: bool, http10: bool = False) -> bytes:
    """A response head; ``http10`` answers an HTTP/1.0 request kept alive (it must be told so).

    Every header value is checked in one pass over the joined head: a value
    with CR, LF or another control character, or a non-ASCII one, would
    inject header lines (a second Content-Length) into the answer.
    """
    lines = [f"HTTP/1.1 {status} {reason(status)}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    if close:
        lines.append("Connection: close")
    elif http10:
        lines.append("Connection: keep-alive")
    text = "\r\n".join(lines)
    breaks = len(lines) - 1
    if (
        text.count("\n") != breaks
        or text.count("\r") != breaks
        or not text.isascii()
        or _CONTROL.search(text)
    ):
        raise UnsafeHeader(_unsafe_header(headers))
    return (text + "\r\n\r\n").encode("ascii")


def _value_error(value: str) -> str | None:
    """Why ``value`` cannot be sent as a header value, or None when it can."""
    if not value.isascii():
        return "non-ASCII characters"
    if "\r" in value or "\n" in value or _CONTROL.search(value):
        return "a control character (CR, LF, NUL, ...)"
    return None


def _unsafe_header(headers: Mapping[str, str]) -> str:
    for name, value in headers.items():
        why = _value_error(name) or _value_error(value)
        if why is not None:
            return f"refusing to send the header {name[:60]!r}: its value has {why}"
    return "refusing to send a response head with a malformed line"
