"""Blocking storage clients behind the async connector interface.

Owns: the bounded thread pool a connector runs its blocking client calls in,
an async iterator over a blocking reader (one thread hop per chunk, so no
thread is held for the length of a download and a slow consumer holds back
the producer), and spooling an async body into a temporary file (memory
below a threshold, disk above) for clients that need a seekable body of
known length.

Must not: know any backend or map errors; callers wrap calls in their own
error table (passed in as ``errors``).
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import IO, ParamSpec, TypeVar

from ..errors import BackendError

P = ParamSpec("P")
T = TypeVar("T")

CHUNK = 256 * 1024
# Bodies up to this size are spooled in memory; larger ones go to a temporary file.
SPOOL_MEMORY = 4 * 1024 * 1024


class BlockingPool:
    """A bounded pool of threads for one connector's blocking client."""

    def __init__(self, workers: int, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class BlockingChunks:
    """Exactly ``length`` bytes from a blocking ``read``, as an async iterator of chunks.

    ``close`` runs once: at the end, on an error, or on ``aclose`` — also for a
    stream never iterated (a 304 answer, a failed response), which an async
    generator would not clean up.
    """

    def __init__(
        self,
        pool: BlockingPool,
        read: Callable[[int], bytes],
        length: int,
        *,
        close: Callable[[], None],
        errors: Callable[[], AbstractContextManager[None]],
        what: str,
    ) -> None:
        self._pool = pool
        self._read = read
        self._remaining = length
        self._close: Callable[[], None] | None = close
        self._errors = errors
        self._what = what

    def __aiter__(self) -> BlockingChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._remaining <= 0:
            await self.aclose()
            raise StopAsyncIteration
        try:
            with self._errors():
                chunk = await self._pool.run(self._read, min(CHUNK, self._remaining))
            if not chunk:
                raise BackendError(f"{self._what} ended {self._remaining} bytes early")
        except BaseException:
            await self.aclose()
            raise
        self._remaining -= len(chunk)
        return chunk

    async def aclose(self) -> None:
        close, self._close = self._close, None
        if close is not None:
            await self._pool.run(close)


async def spool(
    body: AsyncIterator[bytes], pool: BlockingPool, *, memory: int = SPOOL_MEMORY
) -> tuple[IO[bytes], int]:
    """Consume ``body`` into a rewound temporary file; returns it (caller closes) and its size."""
    spooled: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=memory)  # noqa: SIM115 - returned
    size = 0
    try:
        async for chunk in body:
            size += len(chunk)
            if size > memory:
                # Past the threshold the file is on disk: keep its writes off the loop.
                await pool.run(spooled.write, chunk)
            else:
                spooled.write(chunk)
        spooled.seek(0)
    except BaseException:
        spooled.close()
        raise
    return spooled, size
