"""What this thread of execution last saw of each key: the revision (ETag) it read, or that it was missing.

Owns: the memory behind compare-and-set as the handler sees it. A write to a
key read at revision R is conditional on R; a write to a key read as missing
is create-only; a key never seen is written unconditionally. The local runner
clears it between messages and before a retry (``reset_revisions``) so a
retried handler starts from a fresh read.

The memory is per execution context, not per process: two threads that read
the same key and both write it back must not lend each other their
revisions, or the second write would be conditional on the first one's
result and silently overwrite it. A new thread starts empty; asyncio tasks
and ``asyncio.to_thread`` calls share their parent's memory, because they
copy its context and the context holds a reference to the same mapping.

Must not: decide which conditions a connector supports (see connector.py).
"""

from __future__ import annotations

from contextvars import ContextVar

# Marker for "read, and it did not exist".
MISSING = ""

_memory: ContextVar[dict[tuple[str, str], str] | None] = ContextVar(
    "asya_state_revisions", default=None
)


def _seen() -> dict[tuple[str, str], str]:
    seen = _memory.get()
    if seen is None:
        seen = {}
        _memory.set(seen)
    return seen


def remember(mount: str, key: str, etag: str | None) -> None:
    """Record the quoted ETag read or written for ``key``; None means the key is missing."""
    _seen()[(mount, key)] = MISSING if etag is None else etag


def recall(mount: str, key: str) -> str | None:
    """The remembered ETag, MISSING, or None when this context never saw the key."""
    return _seen().get((mount, key))


def reset() -> None:
    """Forget every remembered revision of the current context and start a fresh memory.

    Setting a new mapping (rather than clearing the old one) makes tasks created
    afterwards share it, and leaves any other thread's memory alone.
    """
    _memory.set({})
