"""Sequential read-ahead for the object-store connectors: one read served by concurrent ranged GETs.

Owns: serving the bytes ``[start, start + length)`` of one object revision
as an async iterator of chunks, fetched as bounded ranged requests that run
ahead of the reader. The first range is small (a small object is one
request; a read abandoned early costs little); later ranges double up to the
part size, and the window of bytes requested ahead of the reader doubles
each time the reader finishes a range, up to ``parts_in_flight`` parts. Every
range after the first is pinned by the backend to the revision the first
answered (``If-Match`` on S3, the generation on GCS), so an overwrite
mid-read surfaces as ``Stale`` and never as a mix of two versions.

Each range is read to its end, so its connection goes back to the client's
pool; when the reader goes away (``aclose``: the handler seeked or closed the
file) ranges in flight stop at their next chunk, drained if little is left,
dropped otherwise, and ranges not started never start.

Memory: the ranges in flight and fetched but not yet read, at most
``parts_in_flight`` parts per read, drawn from the connector's byte budget
(``TransferLimits``) except for the range the reader waits on.

Must not: know a backend's client or error table (callers pass ``open_range``
and ``errors``), or hold more than its window.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ...errors import BackendError
from ..blocking_pool import CHUNK, BlockingPool
from .transfer import TransferLimits

# A range abandoned with at most this much left is read to its end so its
# connection can be reused; a longer one is cheaper to drop.
DRAIN_LIMIT = 256 * 1024

# Tasks of abandoned reads finish in the background; keep them referenced.
_BACKGROUND: set[asyncio.Task[None]] = set()


class Stale(BackendError):
    """The object changed while it was being read: a pinned range was refused."""


@dataclass
class RangeBody:
    """The body of one ranged answer, read through blocking calls (run in the pool)."""

    read: Callable[[int], bytes]
    close: Callable[[], None]


# Opens the pinned range [first, last] (inclusive); runs the request in the pool.
OpenRange = Callable[[int, int], Awaitable[RangeBody]]


class _Range:
    __slots__ = ("charged", "chunks", "done", "error", "first", "ready", "received", "size")

    def __init__(self, first: int, size: int) -> None:
        self.first = first
        self.size = size
        self.chunks: deque[bytes] = deque()
        self.received = 0
        self.done = False
        self.error: BaseException | None = None
        self.ready = asyncio.Event()
        self.charged = 0


class Prefetcher:
    """The chunks of ``[start, start + length)``; the range at ``start`` is already open as ``first``."""

    def __init__(
        self,
        *,
        pool: BlockingPool,
        limits: TransferLimits,
        open_range: OpenRange,
        start: int,
        length: int,
        first: RangeBody,
        first_size: int,
        errors: Callable[[], AbstractContextManager[None]],
        what: str,
    ) -> None:
        self._pool = pool
        self._limits = limits
        self._open_range = open_range
        self._errors = errors
        self._what = what
        self._position = start
        self._end = start + length
        settings = limits.settings
        self._part_size = settings.part_size
        self._max_parts = settings.parts_in_flight
        self._max_window = settings.parts_in_flight * settings.part_size
        # At first one range may run ahead of the one being read.
        self._window = 3 * first_size
        self._next_size = first_size
        self._ranges: deque[_Range] = deque()
        self._launched = start
        self._closed = False
        limits.force(first_size)
        head = self._add(first_size, charged=True)
        self._start(head, first)

    # -- the reader's side --------------------------------------------------

    def __aiter__(self) -> Prefetcher:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._closed or self._position >= self._end:
                await self.aclose()
                raise StopAsyncIteration
            self._launch_ahead()
            current = self._ranges[0]
            if current.chunks:
                chunk = current.chunks.popleft()
                self._position += len(chunk)
                if self._position >= current.first + current.size:
                    self._finish(self._ranges.popleft())
                return chunk
            if current.error is not None:
                error = current.error
                await self.aclose()
                raise error
            if current.done:
                await self.aclose()
                raise BackendError(f"{self._what} ended early at byte {self._position}")
            current.ready.clear()
            await current.ready.wait()

    async def aclose(self) -> None:
        """Stop: ranges in flight end at their next chunk, the rest never start."""
        if self._closed:
            return
        self._closed = True
        while self._ranges:
            self._release(self._ranges.popleft())

    # -- ranges ---------------------------------------------------------------

    def _finish(self, done: _Range) -> None:
        self._release(done)
        # The reader kept up with a whole range: let it run further ahead.
        self._window = min(self._max_window, self._window * 2)

    def _release(self, item: _Range) -> None:
        if item.charged:
            self._limits.give(item.charged)
            item.charged = 0
        item.chunks.clear()

    def _add(self, size: int, *, charged: bool) -> _Range:
        item = _Range(self._launched, size)
        if charged:
            item.charged = size
        self._launched += size
        self._ranges.append(item)
        return item

    def _launch_ahead(self) -> None:
        """Start ranges until the window is requested or a bound is reached."""
        while self._launched < self._end:
            ahead = self._launched - self._position
            if self._ranges and (ahead >= self._window or len(self._ranges) >= self._max_parts):
                return
            self._next_size = min(self._part_size, self._next_size * 2)
            size = min(self._next_size, self._end - self._launched)
            if not self._ranges:
                # What the reader waits on now: never held back by the budget.
                self._limits.force(size)
            elif not self._limits.try_take(size):
                return
            item = self._add(size, charged=True)
            self._start(item, None)

    def _start(self, item: _Range, body: RangeBody | None) -> None:
        task = asyncio.ensure_future(self._fetch(item, body))
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    async def _fetch(self, item: _Range, body: RangeBody | None) -> None:
        try:
            if body is not None:
                await self._read(item, body)
                return
            async with self._limits.requests:
                if self._closed:
                    return
                with self._errors():
                    body = await self._open_range(item.first, item.first + item.size - 1)
                await self._read(item, body)
        except Exception as exc:
            item.error = exc
        finally:
            item.done = True
            item.ready.set()

    async def _read(self, item: _Range, body: RangeBody) -> None:
        """Read ``body`` to its end into ``item``, or give it up once the reader has gone."""
        finished = False
        try:
            while item.received < item.size:
                left = item.size - item.received
                if self._closed and left > DRAIN_LIMIT:
                    return
                with self._errors():
                    chunk = await self._pool.run(body.read, min(CHUNK, left))
                if not chunk:
                    raise BackendError(
                        f"{self._what} ended early: a range stopped {left} bytes short"
                    )
                item.received += len(chunk)
                if not self._closed:
                    item.chunks.append(chunk)
                    item.ready.set()
            finished = True
        finally:
            # A fully read body has released its connection already; closing
            # one that is not drops the connection rather than reading on.
            close = body.close
            if not finished:
                with contextlib.suppress(Exception):
                    await self._pool.run(close)
            else:
                with contextlib.suppress(Exception):
                    close()
