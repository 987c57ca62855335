"""Small helpers for conformance tests: bodies as async iterators, whole reads, digests."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

from asya_state_connectors.interface import Connector, ObjectMeta, RangeSpec, WriteCondition

CHUNK = 256 * 1024


async def chunks_of(data: bytes, size: int = CHUNK) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def pattern_body(total: int, seed: int = 7) -> AsyncIterator[bytes]:
    """A deterministic pseudo-random body of ``total`` bytes, generated as it is sent."""
    block = hashlib.sha256(str(seed).encode()).digest() * (CHUNK // 32)
    sent = 0
    while sent < total:
        piece = block[: min(CHUNK, total - sent)]
        sent += len(piece)
        yield piece


def pattern_digest(total: int, seed: int = 7) -> str:
    block = hashlib.sha256(str(seed).encode()).digest() * (CHUNK // 32)
    digest = hashlib.sha256()
    sent = 0
    while sent < total:
        piece = block[: min(CHUNK, total - sent)]
        sent += len(piece)
        digest.update(piece)
    return digest.hexdigest()


async def failing_body(data: bytes, fail_after: int) -> AsyncIterator[bytes]:
    """Yields part of ``data`` and then fails, like a client that dies mid-upload."""
    yield data[:fail_after]
    raise ConnectionResetError("client went away mid-body")


async def put(
    connector: Connector,
    key: str,
    data: bytes,
    *,
    condition: WriteCondition | None = None,
    content_type: str | None = None,
) -> ObjectMeta:
    return await connector.write(
        key,
        chunks_of(data),
        size=len(data),
        condition=condition or WriteCondition(),
        content_type=content_type,
    )


async def get(connector: Connector, key: str, byte_range: RangeSpec | None = None) -> bytes:
    stream = await connector.read(key, byte_range)
    try:
        return b"".join([chunk async for chunk in stream.chunks])
    finally:
        await stream.aclose()


async def digest_of(connector: Connector, key: str) -> tuple[str, int]:
    stream = await connector.read(key)
    digest = hashlib.sha256()
    total = 0
    try:
        async for chunk in stream.chunks:
            digest.update(chunk)
            total += len(chunk)
    finally:
        await stream.aclose()
    return digest.hexdigest(), total


def random_bytes(size: int) -> bytes:
    return os.urandom(size)
