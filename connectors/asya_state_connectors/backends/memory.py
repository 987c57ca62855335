"""``memory``: the reference connector, holding objects in the connector process.

Owns: an in-process store with every optional capability, used as the
reference the conformance suite measures other backends against and by the
benchmark as the floor of the proxy path. State is lost when the process exits.
Names are also kept in order, so listings and the directory checks of a write
(under the store's lock, atomic with it) are binary searches.

Must not: be used for data anyone needs to keep.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Self

from ..errors import (
    BadRequest,
    Conflict,
    ConnectorError,
    IsADirectory,
    NotADirectory,
    NotFound,
    TooLarge,
)
from ..interface import (
    UNCONDITIONAL,
    Capability,
    Connector,
    ListPage,
    ObjectMeta,
    RangeSpec,
    ReadStream,
    WriteCondition,
    is_a_directory,
    not_a_directory,
)
from ..keys import ancestors
from ..listing import paginate
from ..settings import Settings

CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class _Entry:
    data: bytes
    meta: ObjectMeta
    expires_at: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class MemoryConnector(Connector):
    name = "memory"
    capabilities = frozenset(Capability)
    writable_xattrs = frozenset({"content_type", "ttl"})

    def __init__(self, max_object_size: int | None) -> None:
        self.max_object_size = max_object_size
        self._objects: dict[str, _Entry] = {}
        # Every stored name in order, so "is anything stored below this key?"
        # is a binary search rather than a pass over the whole store.
        self._names: list[str] = []
        self._revisions = itertools.count(1)
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        limit = settings.integer("MEMORY_MAX_OBJECT_BYTES", 256 * 1024 * 1024, minimum=1)
        return cls(limit)

    def _get(self, key: str) -> _Entry:
        entry = self._objects.get(key)
        if entry is None or entry.expired(time.time()):
            self._drop(key)
            raise NotFound(f"no object at {key!r}", key=key)
        return entry

    def _check_path(self, key: str) -> None:
        """A new object at ``key`` must not sit below a file or shadow a directory (under the lock)."""
        now = time.time()
        for parent in ancestors(key):
            entry = self._objects.get(parent)
            if entry is not None and not entry.expired(now):
                raise not_a_directory(key, parent)
        if next(self._live_below(key + "/"), None) is not None:
            raise is_a_directory(key)

    def _live_below(self, prefix: str) -> Iterator[tuple[str, _Entry]]:
        """Unexpired (name, entry) pairs whose name starts with ``prefix``, in name order."""
        now, names = time.time(), self._names
        index = bisect.bisect_left(names, prefix)
        while index < len(names) and names[index].startswith(prefix):
            entry = self._objects[names[index]]
            if not entry.expired(now):
                yield names[index], entry
            index += 1

    def _set(self, key: str, entry: _Entry) -> None:
        if key not in self._objects:
            bisect.insort(self._names, key)
        self._objects[key] = entry

    def _drop(self, key: str) -> None:
        if self._objects.pop(key, None) is not None:
            del self._names[bisect.bisect_left(self._names, key)]

    async def path_conflict(self, key: str) -> ConnectorError | None:
        try:
            self._check_path(key)
        except (IsADirectory, NotADirectory) as exc:
            return exc
        return None

    def _check(self, key: str, condition: WriteCondition, *, creates: bool = True) -> _Entry | None:
        try:
            current: _Entry | None = self._get(key)
        except NotFound:
            current = None
        if current is None and creates:
            self._check_path(key)
        if condition.if_none_match and current is not None:
            raise Conflict(f"{key!r} already exists", key=key)
        if condition.if_match is not None and (
            current is None or current.meta.etag != condition.if_match
        ):
            raise Conflict(f"{key!r} changed since it was read", key=key)
        return current

    async def _collect(self, key: str, body: AsyncIterator[bytes], start: bytes = b"") -> bytes:
        data = bytearray(start)
        async for chunk in body:
            data += chunk
            if self.max_object_size is not None and len(data) > self.max_object_size:
                raise TooLarge(f"object exceeds {self.max_object_size} bytes", key=key)
        return bytes(data)

    def _store(
        self, key: str, data: bytes, content_type: str | None, previous: _Entry | None
    ) -> ObjectMeta:
        meta = ObjectMeta(
            key=key,
            size=len(data),
            etag=f"m{next(self._revisions)}",
            content_type=content_type,
            last_modified=time.time(),
        )
        # An overwrite keeps the key's expiry, like Redis SET ... KEEPTTL.
        expires = previous.expires_at if previous is not None else None
        self._set(key, _Entry(data, meta, expires))
        return meta

    async def stat(self, key: str) -> ObjectMeta:
        return self._get(key).meta

    async def read(self, key: str, byte_range: RangeSpec | None = None) -> ReadStream:
        entry = self._get(key)
        start, length = (
            (0, entry.meta.size) if byte_range is None else byte_range.resolve(entry.meta.size, key)
        )
        view = memoryview(entry.data)[start : start + length]

        async def chunks() -> AsyncIterator[bytes]:
            for offset in range(0, len(view), CHUNK):
                yield bytes(view[offset : offset + CHUNK])

        return ReadStream(entry.meta, start, length, chunks())

    async def write(
        self,
        key: str,
        body: AsyncIterator[bytes],
        *,
        size: int | None = None,
        condition: WriteCondition = UNCONDITIONAL,
        content_type: str | None = None,
    ) -> ObjectMeta:
        data = await self._collect(key, body)
        async with self._lock:
            previous = self._check(key, condition)
            return self._store(key, data, content_type, previous)

    async def append(self, key: str, body: AsyncIterator[bytes]) -> ObjectMeta:
        tail = await self._collect(key, body)
        async with self._lock:
            previous = self._check(key, UNCONDITIONAL)
            head = previous.data if previous is not None else b""
            if self.max_object_size is not None and len(head) + len(tail) > self.max_object_size:
                raise TooLarge(f"object would exceed {self.max_object_size} bytes", key=key)
            content_type = previous.meta.content_type if previous is not None else None
            return self._store(key, head + tail, content_type, previous)

    async def rename(self, source: str, target: str) -> ObjectMeta:
        async with self._lock:
            entry = self._get(source)
            self._check(target, UNCONDITIONAL)
            self._drop(source)
            meta = replace(entry.meta, key=target, etag=f"m{next(self._revisions)}")
            self._set(target, replace(entry, meta=meta))
            return meta

    async def delete(self, key: str, *, condition: WriteCondition = UNCONDITIONAL) -> None:
        async with self._lock:
            if self._check(key, condition, creates=False) is None:
                raise NotFound(f"no object at {key!r}", key=key)
            self._drop(key)

    async def list(
        self,
        prefix: str,
        *,
        delimiter: str | None = "/",
        page_token: str | None = None,
        limit: int = 1000,
    ) -> ListPage:
        return paginate(
            self._live_below(prefix),
            lambda item: item[0],
            lambda item: item[1].meta,
            prefix,
            delimiter=delimiter,
            page_token=page_token,
            limit=limit,
        )

    async def get_xattrs(self, key: str) -> dict[str, str]:
        attrs = await super().get_xattrs(key)
        entry = self._get(key)
        attrs["ttl"] = (
            "-1" if entry.expires_at is None else str(max(0, round(entry.expires_at - time.time())))
        )
        return attrs

    async def set_xattr(self, key: str, name: str, value: str) -> None:
        async with self._lock:
            entry = self._get(key)
            if name == "content_type":
                self._objects[key] = replace(
                    entry, meta=replace(entry.meta, content_type=value or None)
                )
                return
            try:
                seconds = int(value)
            except ValueError:
                raise BadRequest(
                    f"user.asya.ttl must be whole seconds, got {value!r}", key=key
                ) from None
            expires = None if seconds < 0 else time.time() + seconds
            self._objects[key] = replace(entry, expires_at=expires)

    async def remove_xattr(self, key: str, name: str) -> None:
        await self.set_xattr(key, name, "" if name == "content_type" else "-1")
