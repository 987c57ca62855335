"""Blocking storage clients behind the async connector interface.

Owns: the bounded thread pool a connector runs its blocking client calls in,
and the chunk size blocking reads use (one thread hop per chunk, so no
thread is held for the length of a download).

Must not: know any backend or map errors; callers wrap calls in their own
error table.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

CHUNK = 256 * 1024


class BlockingPool:
    """A bounded pool of threads for one connector's blocking client."""

    def __init__(self, workers: int, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
