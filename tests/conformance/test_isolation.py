"""Conformance: STATE_PREFIX confines a connector; sibling prefixes never see each other."""

from __future__ import annotations

import pytest

from asya_state_connectors.errors import NotFound
from asya_state_connectors.registry import connector_class
from asya_state_connectors.settings import Settings

from .conftest import Target
from .helpers import get, put


async def test_sibling_prefixes_are_isolated(target: Target) -> None:
    if target.through_server or target.name == "memory":
        pytest.skip(
            "prefix isolation is a property of the backend's key mapping (memory is per process)"
        )
    own_prefix = target.env.get("STATE_PREFIX", "").strip("/")
    sibling_env = {**target.env, "STATE_PREFIX": f"{own_prefix}-sibling/{target.ns}"}
    sibling = connector_class(target.name).from_settings(Settings(sibling_env))
    await sibling.open()
    try:
        await put(sibling, "secret.txt", b"sibling data")
        await put(target.connector, target.key("secret.txt"), b"own data")
        assert await get(sibling, "secret.txt") == b"sibling data"
        assert await get(target.connector, target.key("secret.txt")) == b"own data"
        with pytest.raises(NotFound):
            await get(sibling, target.key("secret.txt"))
        everything = await target.connector.list("", delimiter=None, limit=1000)
        assert not any(
            m.key.endswith("secret.txt") and not m.key.startswith(target.ns)
            for m in everything.entries
        )
        sibling_view = await sibling.list("", delimiter=None)
        assert [m.key for m in sibling_view.entries] == ["secret.txt"]
    finally:
        await sibling.delete("secret.txt")
        await sibling.close()
