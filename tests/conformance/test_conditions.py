"""Conformance: create-only, compare-and-swap and conditional delete, checked both ways."""

from __future__ import annotations

import pytest

from asya_state_connectors.errors import Conflict, NotFound, Unsupported
from asya_state_connectors.interface import Capability, WriteCondition

from .conftest import Target
from .helpers import get, put

CREATE_ONLY = WriteCondition(if_none_match=True)


def _requires(target: Target, capability: Capability) -> None:
    """Run the test when declared; through the server, prove the refusal otherwise."""
    if not target.connector.supports(capability) and not target.through_server:
        pytest.skip(
            f"{target.name} does not declare {capability.value}; refusal is checked through the server"
        )


async def test_create_only(target: Target) -> None:
    _requires(target, Capability.CREATE_ONLY)
    key = target.key("once.txt")
    if not target.connector.supports(Capability.CREATE_ONLY):
        with pytest.raises(Unsupported):
            await put(target.connector, key, b"x", condition=CREATE_ONLY)
        return
    await put(target.connector, key, b"first", condition=CREATE_ONLY)
    with pytest.raises(Conflict):
        await put(target.connector, key, b"second", condition=CREATE_ONLY)
    assert await get(target.connector, key) == b"first"


async def test_compare_and_swap(target: Target) -> None:
    _requires(target, Capability.CAS)
    key = target.key("counter.json")
    read = await put(target.connector, key, b"1")
    if not target.connector.supports(Capability.CAS):
        with pytest.raises(Unsupported):
            await put(target.connector, key, b"2", condition=WriteCondition(if_match=read.etag))
        with pytest.raises(Unsupported):
            await target.connector.delete(key, condition=WriteCondition(if_match=read.etag))
        assert await get(target.connector, key) == b"1"
        return
    fresh = await put(target.connector, key, b"2", condition=WriteCondition(if_match=read.etag))
    with pytest.raises(Conflict):
        await put(target.connector, key, b"3", condition=WriteCondition(if_match=read.etag))
    assert await get(target.connector, key) == b"2"
    await put(target.connector, key, b"3", condition=WriteCondition(if_match=fresh.etag))
    assert await get(target.connector, key) == b"3"


async def test_cas_on_a_missing_key_conflicts(target: Target) -> None:
    if not target.connector.supports(Capability.CAS):
        pytest.skip(f"{target.name} does not declare cas")
    key = target.key("vanished.json")
    meta = await put(target.connector, key, b"x")
    await target.connector.delete(key)
    with pytest.raises(Conflict):
        await put(target.connector, key, b"y", condition=WriteCondition(if_match=meta.etag))
    with pytest.raises(NotFound):
        await target.connector.stat(key)


async def test_conditional_delete(target: Target) -> None:
    if not target.connector.supports(Capability.CAS):
        pytest.skip(f"{target.name} does not declare cas")
    key = target.key("del.json")
    old = await put(target.connector, key, b"1")
    new = await put(target.connector, key, b"2")
    with pytest.raises(Conflict):
        await target.connector.delete(key, condition=WriteCondition(if_match=old.etag))
    assert await get(target.connector, key) == b"2"
    await target.connector.delete(key, condition=WriteCondition(if_match=new.etag))
    with pytest.raises(NotFound):
        await target.connector.stat(key)
