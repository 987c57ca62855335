"""What this process last saw of each key: the revision (ETag) it read, or that it was missing.

Owns: the process-wide, thread-safe memory behind compare-and-set as the
handler sees it. A write to a key read at revision R is conditional on R; a
write to a key read as missing is create-only; a key never seen is written
unconditionally. The local runner clears it between messages and before a
retry (``reset_revisions``) so a retried handler starts from a fresh read.

Must not: decide which conditions a connector supports (see connector.py).
"""

from __future__ import annotations

import os
import threading

# Marker for "read, and it did not exist".
MISSING = ""

_lock = threading.Lock()
_seen: dict[tuple[str, str], str] = {}


def _after_fork_in_child() -> None:
    # Another thread may have held the lock at fork time; the child gets a free one.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def remember(mount: str, key: str, etag: str | None) -> None:
    """Record the quoted ETag read or written for ``key``; None means the key is missing."""
    with _lock:
        _seen[(mount, key)] = MISSING if etag is None else etag


def recall(mount: str, key: str) -> str | None:
    """The remembered ETag, MISSING, or None when this process never saw the key."""
    with _lock:
        return _seen.get((mount, key))


def forget(mount: str, key: str) -> None:
    with _lock:
        _seen.pop((mount, key), None)


def reset() -> None:
    """Forget every remembered revision."""
    with _lock:
        _seen.clear()
