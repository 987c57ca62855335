"""Copying one Redis mount to another Redis server or cluster, in the target's key layout.

Owns: ``copy_mount``: every key of a mount (values, metadata hashes, the
name index, delete records) read with DUMP and PTTL and written with
RESTORE under the target's root, so a mount moves between standalone Redis
(plain ``STATE_PREFIX``) and Redis Cluster (the prefix with a hash tag, see
``redis.cluster.cluster_root``) in either direction with its expiries. On a
cluster the SCAN visits every primary.

Must not: change the source, or copy uploads still being staged or the
index builder's lock (they belong to a connector's life on the source).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import scripts as lua
from .index import SCAN_COUNT, glob_escape

if TYPE_CHECKING:
    from .backend import RedisBufferedCas


async def copy_mount(source: RedisBufferedCas, target: RedisBufferedCas) -> int:
    """Copy ``source``'s mount to ``target``'s (replacing keys of the same name); keys copied."""
    from_link, from_root = await source.layout()
    to_link, to_root = await target.layout()
    copied = 0
    async for key in from_link.scan(glob_escape(from_root) + b"*", SCAN_COUNT):
        rest = key[len(from_root) :]
        if lua.STAGED_INFIX in rest or rest == lua.INDEX_LOCK_SUFFIX:
            continue
        pttl = int(await from_link.call("PTTL", key))
        payload = await from_link.call("DUMP", key)
        if payload is None or pttl == -2:
            continue  # deleted or expired since the SCAN found it
        await to_link.call("RESTORE", to_root + rest, max(pttl, 0), payload, "REPLACE")
        copied += 1
    return copied
