"""Conformance: append, copy, rename and extended attributes, checked both ways."""

from __future__ import annotations

import pytest

from asya_state_connectors.errors import NoSuchAttribute, NotFound, Unsupported
from asya_state_connectors.interface import STANDARD_XATTRS, Capability

from .conftest import Target
from .helpers import chunks_of, get, put


async def test_append(target: Target) -> None:
    key = target.key("log.txt")
    if not target.connector.supports(Capability.APPEND):
        if not target.through_server:
            pytest.skip(
                f"{target.name} does not declare append; refusal is checked through the server"
            )
        with pytest.raises(Unsupported):
            await target.connector.append(key, chunks_of(b"x"))
        return
    first = await target.connector.append(key, chunks_of(b"one\n"))
    second = await target.connector.append(key, chunks_of(b"two\n"))
    assert await get(target.connector, key) == b"one\ntwo\n"
    assert first.etag != second.etag
    assert (await target.connector.stat(key)).size == 8


async def test_copy_keeps_the_source(target: Target) -> None:
    src, dst = target.key("src.txt"), target.key("copy/dst.txt")
    await put(target.connector, src, b"payload", content_type="text/plain")
    await target.connector.copy(src, dst)
    assert await get(target.connector, src) == b"payload"
    assert await get(target.connector, dst) == b"payload"


async def test_rename_moves_the_object(target: Target) -> None:
    src, dst = target.key("old name.txt"), target.key("new/name ü.txt")
    await put(target.connector, src, b"moving")
    await target.connector.rename(src, dst)
    assert await get(target.connector, dst) == b"moving"
    with pytest.raises(NotFound):
        await target.connector.stat(src)


async def test_rename_of_a_missing_key_is_not_found(target: Target) -> None:
    with pytest.raises(NotFound):
        await target.connector.rename(target.key("ghost"), target.key("elsewhere"))


async def test_standard_attributes(target: Target) -> None:
    key = target.key("attrs.json")
    meta = await put(target.connector, key, b"{}", content_type="application/json")
    attrs = await target.connector.get_xattrs(key)
    assert set(STANDARD_XATTRS) <= set(attrs)
    assert attrs["etag"] == meta.etag
    assert attrs["content_type"] == "application/json"
    assert await target.connector.get_xattr(key, "etag") == meta.etag
    with pytest.raises(NoSuchAttribute):
        await target.connector.get_xattr(key, "no_such_thing")
    with pytest.raises(NotFound):
        await target.connector.get_xattrs(target.key("missing"))


async def test_writable_attributes_round_trip(target: Target) -> None:
    key = target.key("writable.bin")
    await put(target.connector, key, b"data")
    for name in sorted(target.connector.writable_xattrs - {"ttl"}):
        await target.connector.set_xattr(key, name, "application/x-test")
        assert await target.connector.get_xattr(key, name) == "application/x-test"
    assert await get(target.connector, key) == b"data"


async def test_read_only_attributes_are_refused(target: Target) -> None:
    if not target.through_server:
        pytest.skip("writability is enforced by the server from writable_xattrs")
    key = target.key("ro.bin")
    await put(target.connector, key, b"data")
    with pytest.raises(Unsupported):
        await target.connector.set_xattr(key, "etag", "forged")


async def test_ttl(target: Target) -> None:
    key = target.key("expiring.json")
    await put(target.connector, key, b"{}")
    if not target.connector.supports(Capability.TTL):
        if target.through_server:
            with pytest.raises(Unsupported):
                await target.connector.set_xattr(key, "ttl", "60")
        return
    assert await target.connector.get_xattr(key, "ttl") == "-1"
    await target.connector.set_xattr(key, "ttl", "3600")
    assert 3500 <= int(await target.connector.get_xattr(key, "ttl")) <= 3600
    await put(target.connector, key, b'{"v": 2}')
    kept = int(await target.connector.get_xattr(key, "ttl"))
    assert 3500 <= kept <= 3600, "an overwrite keeps the key's expiry"
    await target.connector.set_xattr(key, "ttl", "-1")
    assert await target.connector.get_xattr(key, "ttl") == "-1"
