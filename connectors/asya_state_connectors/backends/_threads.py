"""Blocking storage clients behind the async connector interface.

Owns: the bounded thread pool a connector runs its blocking client calls in,
the chunk size blocking reads use (one thread hop per chunk, so no thread is
held for the length of a download), and spooling an async body into a
temporary file (memory below a threshold, disk above) for clients that need
a seekable body of known length.

Must not: know any backend or map errors; callers wrap calls in their own
error table.
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, ParamSpec, TypeVar

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
