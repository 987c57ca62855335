"""What the object-store connectors (S3, GCS) share about conditions and ranged answers.

Owns: turning a failed precondition into the Conflict the protocol promises
(worded for create-only or compare-and-swap), reading ``Content-Range``
answers, the empty body of a range that is empty by rule, and reading a
probe's one listing (what is at a key: a file, a directory or nothing).

Must not: import a backend client.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import TypeVar

from ...errors import Conflict, NotFound
from ...interface import Kind, WriteCondition

T = TypeVar("T")

# Entries a probe's listing asks for: the key itself sorts first, and only
# names that continue the key with a character before '/' (``key.bak``,
# ``key-old``) can come between it and ``key/``.
PROBE_KEYS = 10


@contextlib.contextmanager
def conditional(key: str, condition: WriteCondition) -> Iterator[None]:
    """Inside, a failed condition — or a key gone since it was read (404) — is a Conflict."""
    try:
        yield
    except (Conflict, NotFound) as exc:
        if condition.unconditional:
            raise
        if condition.if_none_match:
            raise Conflict(f"{key!r} already exists", key=key) from exc
        raise Conflict(f"{key!r} changed since it was read", key=key) from exc


def content_range(header: str | None, length: int) -> tuple[int, int]:
    """``(start, total size)`` from ``bytes a-b/total``; a whole-object answer has none."""
    if not header:
        return 0, length
    span, _, total = header.removeprefix("bytes ").partition("/")
    return int(span.partition("-")[0]), int(total)


async def no_chunks() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover - makes this an async generator


def probe_answer(
    full: str, files: Mapping[str, T], prefixes: Iterable[str], truncated: bool
) -> T | Kind | None:
    """What a listing with prefix ``full`` and delimiter ``/`` says is at ``full``.

    The file's entry, DIRECTORY (``full/`` is a common prefix), MISSING, or
    None when siblings such as ``full.bak`` filled the page before ``full/``
    could appear (ask below ``full/`` then).
    """
    if full in files:
        return files[full]
    rolled = list(prefixes)
    if full + "/" in rolled:
        return Kind.DIRECTORY
    seen = [*files, *rolled]
    if not truncated or (seen and max(seen) > full + "/"):
        return Kind.MISSING
    return None
