"""Conformance: whole-object round trips, stat, revisions, ranges, failed writes."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from asya_state_connectors.errors import (
    ConnectorError,
    NotFound,
    RangeNotSatisfiable,
    TooLarge,
)
from asya_state_connectors.interface import RangeSpec
from asya_state_connectors.registry import connector_class

from .conftest import Target
from .helpers import digest_of, failing_body, get, pattern_body, pattern_digest, put, random_bytes

MiB = 1024 * 1024


@pytest.mark.parametrize("size", [0, 1, 5 * MiB, 64 * MiB], ids=["0B", "1B", "5MiB", "64MiB"])
async def test_round_trip_is_byte_exact(target: Target, size: int) -> None:
    key = target.key(f"blob-{size}.bin")
    limit = target.connector.max_object_size
    if limit is not None and size > limit:
        with pytest.raises(TooLarge):
            await target.connector.write(key, pattern_body(size), size=size)
        with pytest.raises(NotFound):
            await target.connector.stat(key)
        return
    meta = await target.connector.write(key, pattern_body(size), size=size)
    assert meta.size == size
    digest, total = await digest_of(target.connector, key)
    assert total == size
    assert digest == pattern_digest(size), f"sha256 differs after a {size}-byte round trip"
    stat = await target.connector.stat(key)
    assert (stat.size, stat.etag) == (size, meta.etag)


async def test_streamed_write_without_declared_size(target: Target) -> None:
    key = target.key("unsized.bin")
    await target.connector.write(key, pattern_body(3 * MiB + 5), size=None)
    assert (await digest_of(target.connector, key)) == (pattern_digest(3 * MiB + 5), 3 * MiB + 5)


async def test_every_write_changes_the_revision(target: Target) -> None:
    key = target.key("rev.txt")
    first = await put(target.connector, key, b"same")
    second = await put(target.connector, key, b"same")
    third = await put(target.connector, key, b"different")
    assert third.etag not in (first.etag, second.etag), "new content, new revision"
    if connector_class(target.name).revision_follows_content:
        assert first.etag == second.etag, "a content-derived revision follows the content"
    else:
        assert first.etag != second.etag, "rewriting identical bytes is still a new revision"
    assert (await target.connector.stat(key)).etag == third.etag
    assert await get(target.connector, key) == b"different"


async def test_content_type_round_trips(target: Target) -> None:
    key = target.key("doc.json")
    await put(target.connector, key, b"{}", content_type="application/json")
    assert (await target.connector.stat(key)).content_type == "application/json"


async def test_missing_key_is_not_found_everywhere(target: Target) -> None:
    key = target.key("nope/missing.txt")
    with pytest.raises(NotFound):
        await target.connector.stat(key)
    with pytest.raises(NotFound):
        await get(target.connector, key)
    with pytest.raises(NotFound):
        await target.connector.delete(key)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (RangeSpec(0, 9), slice(0, 10)),
        (RangeSpec(1000, 1999), slice(1000, 2000)),
        (RangeSpec(4000, None), slice(4000, None)),
        (RangeSpec(None, 96), slice(-96, None)),
        (RangeSpec(4090, 10_000), slice(4090, None)),
    ],
    ids=["head", "middle", "open-ended", "suffix", "past-the-end"],
)
async def test_ranged_reads_return_exact_slices(
    target: Target, spec: RangeSpec, expected: slice
) -> None:
    key = target.key("ranged.bin")
    data = random_bytes(4096)
    await put(target.connector, key, data)
    stream = await target.connector.read(key, spec)
    try:
        body = b"".join([c async for c in stream.chunks])
    finally:
        await stream.aclose()
    assert body == data[expected]
    assert stream.meta.size == 4096
    assert stream.start == range(len(data))[expected].start
    assert stream.length == len(body)


async def test_range_beyond_the_end_is_refused(target: Target) -> None:
    key = target.key("short.bin")
    await put(target.connector, key, b"0123456789")
    with pytest.raises(RangeNotSatisfiable) as info:
        await get(target.connector, key, RangeSpec(10, None))
    assert info.value.size == 10


async def test_failed_write_keeps_the_previous_version(target: Target) -> None:
    key = target.key("precious.txt")
    before = await put(target.connector, key, b"version 1")
    with pytest.raises((ConnectorError, ConnectionError, OSError)):
        await target.connector.write(key, failing_body(b"x" * 100_000, 50_000), size=None)
    assert await get(target.connector, key) == b"version 1"
    assert (await target.connector.stat(key)).etag == before.etag
    listing = await target.connector.list(target.ns)
    assert [m.key for m in listing.entries] == [key], "a failed write left a stray object"


async def test_failed_first_write_leaves_nothing(target: Target) -> None:
    key = target.key("never.txt")
    with pytest.raises((ConnectorError, ConnectionError, OSError)):
        await target.connector.write(key, failing_body(b"y" * 10_000, 5_000), size=None)
    with pytest.raises(NotFound):
        await target.connector.stat(key)


async def test_declared_size_limit_is_enforced_before_storing(target: Target) -> None:
    limit = target.connector.max_object_size
    if limit is None or limit > 256 * MiB:
        pytest.skip(f"{target.name} declares no size limit small enough to exercise cheaply")
    key = target.key("too-big.bin")
    await put(target.connector, key, b"small")
    with pytest.raises(TooLarge):
        await target.connector.write(key, pattern_body(limit + 1), size=None)
    assert await get(target.connector, key) == b"small"


ODD_NAMES = [
    "with space.txt",
    "question?.txt",
    "hash#tag.txt",
    "per%cent.txt",
    "plus+and&amp=.txt",
    "ünïcødé/文件.json",
    "emoji-🙂.bin",
    "quote'\"s.txt",
    "semi;colon:colon.txt",
    "tilde~[brackets]*star.txt",
]


async def test_odd_key_names_round_trip_and_list(target: Target) -> None:
    for index, name in enumerate(ODD_NAMES):
        await put(target.connector, target.key(name), f"body {index}".encode())
    for index, name in enumerate(ODD_NAMES):
        assert await get(target.connector, target.key(name)) == f"body {index}".encode(), name
    page = await target.connector.list(target.ns, delimiter=None)
    assert sorted(m.key for m in page.entries) == sorted(target.key(n) for n in ODD_NAMES)


async def test_concurrent_writes_to_different_keys_all_land(target: Target) -> None:
    payloads = {
        target.key(f"par/{i}"): hashlib.sha256(str(i).encode()).digest() * 32 for i in range(40)
    }
    await asyncio.gather(*(put(target.connector, k, v) for k, v in payloads.items()))
    reads = await asyncio.gather(*(get(target.connector, k) for k in payloads))
    assert dict(zip(payloads, reads, strict=True)) == payloads


async def test_delete_removes_the_object(target: Target) -> None:
    key = target.key("gone.txt")
    await put(target.connector, key, b"bye")
    await target.connector.delete(key)
    with pytest.raises(NotFound):
        await target.connector.stat(key)
    assert (await target.connector.list(target.ns)).entries == []
