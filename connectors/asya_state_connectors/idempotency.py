"""Idempotent retries of mutating requests: the request id and what backends do with it.

Owns: the ``Asya-Request-Id`` header's name and syntax, the id of the request
being served (a context variable the server sets around one mutating
request, so backends need no new parameters), and the small helpers a
backend uses to store it with what it writes and to recognise it later.

The runtime chooses one random id per logical operation (a write, append,
delete, rename, attribute change) and sends it again when it retries after a
lost reply (a timeout, a dropped connection, a restarted connector). A
backend stores the id of the last request that changed an object beside the
object's metadata (or, for a delete, a short-lived record); when a retry
then fails its condition (409) or finds the key gone (404), the server asks
the backend whether the current state was made by this very request and, if
so, answers with success and the current metadata instead. The check runs
only on that failure path: the common path costs storing the id.

Another replica may write the key between the first attempt and its retry,
many times while a killed connector restarts. Redis, NATS KV and fs keep a
record of every request they apply, made atomically with the change (in
the same script, the same atomic batch, or just before the rename that the
record names), for ``RECORD_SECONDS`` whatever happens to the key after:
the retry is answered as applied with its own revision, which is no longer
the current one, so a conditional write the caller bases on it conflicts as
it should. A short list of the key's recent writes (``remember``, ``find``:
id, revision and size of each, newest first, carried forward by every
write) answers the common case without a record lookup on NATS KV and fs.
S3 and GCS know only the current object's request id (and a record per
delete).

Backends whose store has no expiry (fs, S3, GCS) delete their records past
``RECORD_SECONDS`` with ``sweep_periodically``; Redis and NATS KV let the
store expire them.

Must not: talk to a backend or know HTTP beyond the header's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable

from .errors import BadRequest

HEADER = "Asya-Request-Id"
# What a request id looks like: the runtime sends 32 hex digits; anything
# printable and short enough to live in metadata and headers is accepted.
_SYNTAX = re.compile(r"^[0-9A-Za-z_-]{8,64}$")
# How long every backend recognises a request by its id (seconds): its
# record (of a write, or of a delete) lives at least this long and then goes
# (a TTL, or a sweep). The runtime sends no retry later than
# ``RETRY_LIMIT_SECONDS`` after the first attempt began (its
# ``RETRY_HORIZON``, kept equal by a test), and a record is made after that,
# so every retry it sends finds the record of an attempt that was applied.
RECORD_SECONDS = 120
RETRY_LIMIT_SECONDS = 100
# How many of a key's latest writes a backend keeping a list remembers: a
# retry is recognised until this many other writes followed its own.
RECENT_WRITES = 8

log = logging.getLogger("asya_state_connectors.idempotency")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "asya_request_id", default=None
)


def parse(value: str | None) -> str | None:
    """The request id from its header value; BadRequest names a malformed one."""
    if value is None or value == "":
        return None
    if not _SYNTAX.match(value):
        raise BadRequest(f"{HEADER} must be 8 to 64 letters, digits, '-' or '_'")
    return value


def current() -> str | None:
    """The id of the mutating request being served, if its client sent one."""
    return _current.get()


def bind(request_id: str | None) -> contextvars.Token[str | None]:
    return _current.set(request_id)


def unbind(token: contextvars.Token[str | None]) -> None:
    _current.reset(token)


def new_etag(length: int = 24) -> str:
    """A fresh revision for a backend that makes its own: the request id when there is one.

    A backend whose commit script already treats "the new etag is the
    current one" as "this write already happened" (Redis) then recognises a
    retry of the same request for free, inside the same atomic step.
    """
    request_id = _current.get()
    return request_id if request_id is not None else secrets.token_hex(length // 2)


def remember(previous: str | None, request_id: str | None, etag: str, size: int) -> str | None:
    """The recent-writes list after a write: ``request_id``'s entry first, then ``previous``'s.

    Entries read ``id:etag:size`` joined by ``,`` (neither character occurs
    in an id or a backend's etag); a write without an id adds nothing. None
    when there is nothing to remember.
    """
    entries = [] if request_id is None else [f"{request_id}:{etag}:{size}"]
    if previous:
        entries += [e for e in previous.split(",") if e][: RECENT_WRITES - len(entries)]
    return ",".join(entries) or None


def find(recent: str | None, request_id: str) -> tuple[str, int] | None:
    """The etag and size ``request_id`` wrote according to a recent-writes list, if listed."""
    for entry in (recent or "").split(","):
        name, _, rest = entry.partition(":")
        etag, _, size = rest.rpartition(":")
        if name == request_id and etag and size.isdigit():
            return etag, int(size)
    return None


def expired(recorded_at: float, now: float) -> bool:
    """Whether a record made at ``recorded_at`` (seconds since the epoch) is past the window."""
    return now - recorded_at > RECORD_SECONDS


async def sweep_periodically(sweep: Callable[[float], Awaitable[int]], name: str) -> None:
    """Run ``sweep(now)`` (delete records older than the window) about every ``RECORD_SECONDS``.

    The first turn comes after a random part of the window, not at start:
    replicas starting together then do not all list at once, and a
    connector's start costs no request. A failed sweep (the store briefly
    gone) is logged and tried again at the next turn; readers ignore the
    records it missed meanwhile.
    """
    while True:
        await asyncio.sleep(RECORD_SECONDS * random.uniform(0.5, 1.0))
        try:
            await sweep(time.time())
        except Exception as exc:
            log.warning("%s: could not sweep old request records: %s", name, exc)


class RecordSweeper:
    """``sweep_periodically`` in the background between a connector's open and close."""

    def __init__(self, sweep: Callable[[float], Awaitable[int]], name: str) -> None:
        self._sweep = sweep
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(sweep_periodically(self._sweep, self._name))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
