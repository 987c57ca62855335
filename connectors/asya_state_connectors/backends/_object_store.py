"""What the object-store connectors (S3, GCS) share about conditions and ranged answers.

Owns: turning a failed precondition into the Conflict the protocol promises
(worded for create-only or compare-and-swap), reading ``Content-Range``
answers, and the empty body of a range that is empty by rule.

Must not: import a backend client.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

from ..errors import Conflict, NotFound
from ..interface import WriteCondition


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
