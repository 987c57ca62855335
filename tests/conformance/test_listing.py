"""Conformance: prefix listing, delimiter roll-up and pagination."""

from __future__ import annotations

import asyncio

from asya_state_connectors.interface import Connector, ListPage, ObjectMeta

from .conftest import Target
from .helpers import put


async def _all_pages(
    connector: Connector, prefix: str, *, delimiter: str | None, limit: int
) -> list[ListPage]:
    pages: list[ListPage] = []
    token: str | None = None
    while True:
        page = await connector.list(prefix, delimiter=delimiter, page_token=token, limit=limit)
        pages.append(page)
        token = page.next_token
        if token is None:
            return pages
        assert len(pages) < 100, "pagination does not terminate"


async def _write_many(connector: Connector, keys: list[str], parallel: int = 32) -> None:
    gate = asyncio.Semaphore(parallel)

    async def one(key: str) -> ObjectMeta:
        async with gate:
            return await put(connector, key, key.encode())

    await asyncio.gather(*(one(k) for k in keys))


async def test_delimiter_rolls_up_subdirectories(target: Target) -> None:
    for name in ["a.txt", "b/1.txt", "b/2.txt", "b/c/3.txt", "c.txt", "d/e/f.txt"]:
        await put(target.connector, target.key(name), b"x")
    page = await target.connector.list(target.ns, delimiter="/")
    assert [m.key for m in page.entries] == [target.key("a.txt"), target.key("c.txt")]
    assert page.prefixes == [target.key("b/"), target.key("d/")]
    sub = await target.connector.list(target.key("b/"), delimiter="/")
    assert [m.key for m in sub.entries] == [target.key("b/1.txt"), target.key("b/2.txt")]
    assert sub.prefixes == [target.key("b/c/")]


async def test_flat_listing_is_recursive_and_sorted(target: Target) -> None:
    names = ["z.txt", "b/c/3.txt", "a.txt", "b/1.txt", "b-dash.txt", "b0.txt"]
    for name in names:
        await put(target.connector, target.key(name), b"x")
    page = await target.connector.list(target.ns, delimiter=None)
    assert [m.key for m in page.entries] == sorted(target.key(n) for n in names)
    assert page.prefixes == []


async def test_partial_name_prefix(target: Target) -> None:
    for name in ["sessions/abc.json", "sessions/abd.json", "sessions/xyz.json", "sessionsX.json"]:
        await put(target.connector, target.key(name), b"{}")
    page = await target.connector.list(target.key("sessions/ab"), delimiter="/")
    assert [m.key for m in page.entries] == [
        target.key("sessions/abc.json"),
        target.key("sessions/abd.json"),
    ]


async def test_entries_carry_size_and_revision(target: Target) -> None:
    meta = await put(target.connector, target.key("sized.bin"), b"12345")
    (entry,) = (await target.connector.list(target.ns)).entries
    assert (entry.key, entry.size, entry.etag) == (meta.key, 5, meta.etag)


async def test_pagination_over_1000_keys_returns_each_exactly_once(target: Target) -> None:
    # Small pages over a thousand keys cross as many page boundaries as large
    # pages over thousands would; the backends' native pages are the limit.
    keys = [target.key(f"many/{i:05d}") for i in range(1000)] + [
        target.key(f"many/sub{j}/x") for j in range(20)
    ]
    await _write_many(target.connector, keys)

    flat = await _all_pages(target.connector, target.key("many/"), delimiter=None, limit=400)
    assert len(flat) >= 3, "1,020 keys should take at least three pages of 400"
    listed = [m.key for page in flat for m in page.entries]
    assert listed == sorted(keys)

    rolled = await _all_pages(target.connector, target.key("many/"), delimiter="/", limit=333)
    names = [m.key for page in rolled for m in page.entries]
    prefixes = [p for page in rolled for p in page.prefixes]
    assert names == sorted(k for k in keys if "/sub" not in k)
    assert prefixes == sorted(target.key(f"many/sub{j}/") for j in range(20))
    assert all(len(page.entries) + len(page.prefixes) <= 333 for page in rolled)


async def test_empty_prefix_lists_nothing(target: Target) -> None:
    page = await target.connector.list(target.key("nothing-here/"))
    assert (page.entries, page.prefixes, page.next_token) == ([], [], None)
