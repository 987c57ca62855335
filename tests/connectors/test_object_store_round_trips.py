"""Round trips of a stat or an opening read on S3 and GCS, counted from the requests' order.

A missing key must cost one round trip, as upstream's one HEAD or GET
does, while still saying why it is missing (a directory, below a file, or
nothing). Each backend request is held for a moment before it is sent, and
a request's round is one more than the deepest round already answered when
it was issued: requests issued together share a round, a request issued
after another's answer starts the next. Counting order, not time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from asya_state_connectors.backends.blocking_pool import BlockingPool
from asya_state_connectors.errors import IsADirectory, NotADirectory
from asya_state_connectors.interface import Connector, Missing, ObjectMeta
from asya_state_connectors.registry import connector_class
from asya_state_connectors.settings import Settings
from tests.conformance.helpers import put
from tests.fixtures.connectors import env_fixture_name

# Long enough that every request issued together is issued before any answers.
HOLD_SECONDS = 0.05


class Rounds:
    """Wraps a connector's blocking pool and numbers the round of every request."""

    def __init__(self, pool: BlockingPool) -> None:
        self._run = pool.run
        self.deepest_answered = 0
        self.deepest = 0
        self.requests = 0
        pool.run = self.run  # type: ignore[method-assign]

    async def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        depth = self.deepest_answered + 1
        self.deepest = max(self.deepest, depth)
        self.requests += 1
        try:
            await asyncio.sleep(HOLD_SECONDS)
            return await self._run(fn, *args, **kwargs)
        finally:
            self.deepest_answered = max(self.deepest_answered, depth)

    async def count(self, operation: Awaitable[Any]) -> tuple[int, Any]:
        """(rounds, outcome): the value, or the exception it raised."""
        self.deepest_answered = self.deepest = self.requests = 0
        try:
            outcome = await operation
        except Exception as exc:
            outcome = exc
        return self.deepest, outcome


def _pool(connector: Connector) -> BlockingPool:
    store = getattr(connector, "s3", None) or getattr(connector, "gcs")  # noqa: B009
    pool: BlockingPool = store.pool
    return pool


@pytest.fixture(params=["s3-buffered-cas", "gcs-buffered-cas"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Connector, str, Rounds]]:
    env: dict[str, str] = request.getfixturevalue(env_fixture_name(request.param))
    connector = connector_class(request.param).from_settings(Settings(env))
    await connector.open()
    try:
        ns = f"rt{uuid.uuid4().hex[:10]}/"
        await put(connector, ns + "dir/present.json", b"{}")
        await put(connector, ns + "file.txt", b"file")
        yield connector, ns, Rounds(_pool(connector))
    finally:
        await connector.close()


async def _read_open(connector: Connector, key: str) -> ObjectMeta:
    stream = await connector.read(key)
    await stream.aclose()
    return stream.meta


@pytest.mark.parametrize("opening", ["stat", "read"])
@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("none.json", None),  # no parent directory
        ("dir/none.json", None),  # in a directory that exists
        ("deep/er/none.json", None),  # below parents that do not exist
        ("dir", IsADirectory),
        ("file.txt/none.json", NotADirectory),
    ],
)
async def test_a_missing_key_costs_one_round_trip_and_says_why(
    store: tuple[Connector, str, Rounds], opening: str, name: str, why: type | None
) -> None:
    connector, ns, rounds = store
    key = ns + name
    attempt = connector.stat(key) if opening == "stat" else _read_open(connector, key)
    taken, outcome = await rounds.count(connector.looked_up(key, attempt))
    assert isinstance(outcome, Missing), outcome
    if why is None:
        assert outcome.conflict is None
    else:
        assert isinstance(outcome.conflict, why)
        assert outcome.conflict.key == key
    assert taken == 1


@pytest.mark.parametrize("opening", ["stat", "read"])
async def test_a_stored_key_is_answered_in_one_round_trip(
    store: tuple[Connector, str, Rounds], opening: str
) -> None:
    connector, ns, rounds = store
    key = ns + "dir/present.json"
    attempt = connector.stat(key) if opening == "stat" else _read_open(connector, key)
    taken, outcome = await rounds.count(connector.looked_up(key, attempt))
    assert isinstance(outcome, ObjectMeta), outcome
    assert (outcome.key, outcome.size) == (key, 2)
    assert taken == 1
