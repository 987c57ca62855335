"""What the object-store connectors (S3, GCS) share about conditions and ranged answers.

Owns: turning a failed precondition into the Conflict the protocol promises
(worded for create-only or compare-and-swap), reading ``Content-Range``
answers, the empty body of a range that is empty by rule, reading a
probe's one listing (what is at a key: a file, a directory or nothing), and
asking why a key is missing beside the request that may miss it.

Must not: import a backend client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from ...errors import Conflict, NotFound
from ...interface import Connector, Kind, Missing, WriteCondition

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


async def looked_up_beside(connector: Connector, key: str, attempt: Awaitable[T]) -> T:
    """``Connector.looked_up`` in one round trip: the directory checks run beside ``attempt``.

    A missing key's stat or read then costs one round trip, as upstream's
    one HEAD or GET does, instead of a miss followed by the checks. A stored
    key pays with requests, not time: its answer does not wait for the
    checks, which are cancelled where they have not been sent yet (one
    ListObjectsV2 or objects list below the key, and one HEAD or metadata
    get per parent directory).
    """
    why = asyncio.ensure_future(connector.path_conflict(key))
    try:
        return await attempt
    except Missing:
        raise
    except NotFound as exc:
        raise Missing(key, await why) from exc
    finally:
        if not why.done():
            why.cancel()
        # Nobody waits for an answer about a key that was found (or failed
        # otherwise): collect it, so a failed check is not logged as lost.
        why.add_done_callback(_collect)


def _collect(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
