"""Building a Redis mount's name index, once for objects written before it existed or again on request.

Owns: making the index of one mount complete (see ``redis.scripts`` for the
layout): the names of every object found by a SCAN of the mount's
metadata hashes (of every primary on Redis Cluster), added in batches so
no call holds Redis for long, then
the completeness mark. One builder at a time per mount across every
connector process: the builder holds a lock key with an expiry, renewed
after each batch; the others wait until the mark appears (or the lock
expires with its holder, and one of them takes over).

``REDIS_INDEX_SCAN=false`` skips the SCAN: a mount without an index then
starts with an empty one (for databases with nothing from before it).

Until the index is complete the scripts refuse to create objects
(NEEDS_INDEX) and listings wait, so nothing is created under a directory the
index has not seen yet; reads, overwrites and deletes go on.

Must not: run on every request (the connector calls it only when a script
or a read block says the index is incomplete), or change objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

from redis import exceptions as rx

from . import scripts as lua
from .cluster import Link

log = logging.getLogger("asya_state_connectors.redis")

# Keys SCAN looks at per call: about a millisecond of Redis time each.
SCAN_COUNT = 1000
LOCK_MS = 30_000
WAIT_SECONDS = 0.05
_GLOB_SPECIAL = frozenset(b"*?[]\\")


def glob_escape(raw: bytes) -> bytes:
    """Escape SCAN MATCH metacharacters so a prefix matches only itself."""
    out = bytearray()
    for byte in raw:
        if byte in _GLOB_SPECIAL:
            out.append(0x5C)
        out.append(byte)
    return bytes(out)


class IndexBuilder:
    """Makes the index of the mount under ``root`` complete."""

    def __init__(self, link: Link, root: bytes, *, scan: bool = True) -> None:
        self._scan = scan
        self._link = link
        self._root = root
        self.index = root + lua.INDEX_SUFFIX
        self._lock = root + lua.INDEX_LOCK_SUFFIX
        self._building = asyncio.Lock()

    async def complete(self) -> bool:
        return await self._link.call("ZSCORE", self.index, lua.COMPLETE) is not None

    async def ensure(self) -> None:
        """Return once the index is complete, building it here if no one else is.

        Without ``scan`` a missing index starts empty and complete: for
        databases that hold nothing from before the index, where the SCAN
        would only cost time.
        """
        if not self._scan:
            await self._link.call("ZADD", self.index, 0, lua.COMPLETE)
            return
        async with self._building:
            while not await self.complete():
                token = secrets.token_hex(8)
                if await self._take_lock(token):
                    try:
                        await self._build(token, fresh=False)
                    finally:
                        await self._release(token)
                    return
                await asyncio.sleep(WAIT_SECONDS)

    async def rebuild(self) -> int:
        """Drop the index and build it again from the stored objects; returns the names indexed."""
        async with self._building:
            token = await self._acquire()
            try:
                return await self._build(token, fresh=True)
            finally:
                await self._release(token)

    async def _acquire(self) -> str:
        token = secrets.token_hex(8)
        while True:
            if await self._take_lock(token):
                return token
            await asyncio.sleep(WAIT_SECONDS)

    async def _take_lock(self, token: str) -> bool:
        return await self._link.call("SET", self._lock, token, "NX", "PX", LOCK_MS) is not None

    async def _build(self, token: str, *, fresh: bool) -> int:
        started = time.monotonic()
        if fresh:
            # Incomplete from here on: creates wait for the new index.
            await self._link.call("DEL", self.index)
        pattern = glob_escape(self._root) + b"*" + lua.META_SUFFIX
        strip, cut = len(self._root), len(lua.META_SUFFIX)
        added = 0
        names: list[bytes] = []
        # On Redis Cluster the SCAN visits every primary in turn.
        async for raw in self._link.scan(pattern, SCAN_COUNT):
            names.append(raw[strip:-cut])
            if len(names) >= SCAN_COUNT:
                added += await self._adopt(names)
                names = []
        added += await self._adopt(names)
        await self._link.call("ZADD", self.index, 0, lua.COMPLETE)
        log.info(
            "indexed %d names under %r in %.1fs",
            added,
            self._root.decode("utf-8", "replace"),
            time.monotonic() - started,
        )
        return added

    async def _adopt(self, names: list[bytes]) -> int:
        """Index the names whose objects exist, and keep the lock while the build goes on."""
        added = 0
        if names:
            added = int(await self._link.run("ADOPT", [self.index], [self._root, *names]))
        await self._link.call("PEXPIRE", self._lock, LOCK_MS)
        return added

    async def _release(self, token: str) -> None:
        # Best effort: the lock expires on its own.
        with contextlib.suppress(rx.RedisError, OSError):
            if await self._link.call("GET", self._lock) == token.encode():
                await self._link.call("DEL", self._lock)
