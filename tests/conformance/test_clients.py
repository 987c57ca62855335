"""Conformance: independent clients of one backend arbitrate through the backend, not the client.

Each test opens extra clients beside the target — separate backend clients
directly, or separate connections to the same connector process — and races
them in one event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from asya_state_connectors.client import HttpConnector
from asya_state_connectors.errors import Conflict
from asya_state_connectors.interface import Capability, Connector, ObjectMeta, WriteCondition
from asya_state_connectors.registry import connector_class
from asya_state_connectors.settings import Settings

from .conftest import Target
from .helpers import get, put


@asynccontextmanager
async def clients(target: Target, count: int) -> AsyncIterator[list[Connector]]:
    if target.name == "memory" and not target.through_server:
        pytest.skip("separate memory connectors are separate stores")
    opened: list[Connector] = []
    try:
        for _ in range(count):
            client: Connector = (
                HttpConnector(target.socket)
                if target.socket
                else connector_class(target.name).from_settings(Settings(target.env))
            )
            await client.open()
            opened.append(client)
        yield opened
    finally:
        for client in opened:
            await client.close()


async def test_two_clients_holding_one_revision_exactly_one_wins(target: Target) -> None:
    if not target.connector.supports(Capability.CAS):
        pytest.skip(f"{target.name} declares no compare-and-swap")
    key = target.key("state.json")
    async with clients(target, 2) as (first, second):
        await put(first, key, b"0")
        for round_no in range(10):
            read_a = (await first.stat(key)).etag
            read_b = (await second.stat(key)).etag
            assert read_a == read_b
            outcomes = await asyncio.gather(
                put(first, key, b"a%d" % round_no, condition=WriteCondition(if_match=read_a)),
                put(second, key, b"b%d" % round_no, condition=WriteCondition(if_match=read_b)),
                return_exceptions=True,
            )
            won = [o for o in outcomes if isinstance(o, ObjectMeta)]
            lost = [o for o in outcomes if isinstance(o, Conflict)]
            assert (len(won), len(lost)) == (1, 1), outcomes
            winner = b"a" if won[0] is outcomes[0] else b"b"
            assert await get(first, key) == winner + b"%d" % round_no


async def test_a_revision_read_before_another_write_is_stale(target: Target) -> None:
    """The WATCH-right-before-MULTI mistake: the check must use the revision the writer read."""
    if not target.connector.supports(Capability.CAS):
        pytest.skip(f"{target.name} declares no compare-and-swap")
    key = target.key("doc")
    async with clients(target, 1) as (other,):
        read = await put(target.connector, key, b"v1")
        await put(other, key, b"v2 by someone else")
        with pytest.raises(Conflict):
            await put(
                target.connector,
                key,
                b"v3 from a stale read",
                condition=WriteCondition(if_match=read.etag),
            )
        assert await get(target.connector, key) == b"v2 by someone else"


async def test_concurrent_creators_of_a_missing_key_one_succeeds(target: Target) -> None:
    if not target.connector.supports(Capability.CREATE_ONLY):
        pytest.skip(f"{target.name} declares no create-only writes")
    key = target.key("lock")
    async with clients(target, 6) as racers:
        outcomes = await asyncio.gather(
            *(
                put(c, key, b"%d" % i, condition=WriteCondition(if_none_match=True))
                for i, c in enumerate(racers)
            ),
            return_exceptions=True,
        )
        winners = [i for i, o in enumerate(outcomes) if isinstance(o, ObjectMeta)]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, Conflict) for o in outcomes if not isinstance(o, ObjectMeta)), (
            outcomes
        )
        assert await get(racers[0], key) == b"%d" % winners[0]


async def test_cas_increments_from_four_clients_lose_no_update(target: Target) -> None:
    if not target.connector.supports(Capability.CAS):
        pytest.skip(f"{target.name} declares no compare-and-swap")
    key = target.key("counter")

    async def increment(client: Connector, times: int) -> None:
        for _ in range(times):
            while True:
                stream = await client.read(key)
                value = int(b"".join([c async for c in stream.chunks]))
                try:
                    await put(
                        client,
                        key,
                        b"%d" % (value + 1),
                        condition=WriteCondition(if_match=stream.meta.etag),
                    )
                    break
                except Conflict:
                    continue

    async with clients(target, 4) as racers:
        await put(racers[0], key, b"0")
        await asyncio.gather(*(increment(c, 25) for c in racers))
        assert await get(racers[0], key) == b"100"
