"""Conformance on crowded backends: every listing and directory test beside 200,000 foreign keys.

The suite's own servers hold 20,000 objects of other mounts (see
tests/fixtures); here fresh Redis and NATS servers hold ten times as many,
and each connector-level test of test_listing and test_directories runs
against them directly. What must hold is the same answer, not a speed: cost
is measured by ``asya-state bench --populated``.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from asya_state_cli.bench.crowd import crowd_nats, crowd_redis
from asya_state_cli.servers.nats import NatsServer
from asya_state_cli.servers.redis import RedisServer
from asya_state_connectors.registry import connector_class
from asya_state_connectors.settings import Settings

from . import test_directories, test_listing
from .conftest import Target

pytestmark = pytest.mark.slow

FOREIGN_KEYS = 200_000

TestFunction = Callable[[Target], Awaitable[None]]


def _connector_tests() -> list[TestFunction]:
    """The tests of both modules that need nothing but a target."""
    found: list[TestFunction] = []
    for module in (test_listing, test_directories):
        for name, function in inspect.getmembers(module, inspect.iscoroutinefunction):
            if name.startswith("test_") and list(inspect.signature(function).parameters) == [
                "target"
            ]:
                found.append(function)
    return found


@pytest.fixture(scope="module")
def crowded_env() -> Iterator[dict[str, dict[str, str]]]:
    with RedisServer() as redis, NatsServer() as nats:
        crowd_redis(redis.url, 0, FOREIGN_KEYS)
        crowd_nats(nats.url, "crowded", 0, FOREIGN_KEYS)
        yield {
            "redis-buffered-cas": {"REDIS_URL": redis.url, "STATE_PREFIX": "conformance/"},
            "nats-kv-buffered-cas": {
                "NATS_URL": nats.url,
                "NATS_KV_BUCKET": "crowded",
                "STATE_PREFIX": "conformance/",
            },
        }


@pytest.fixture(params=["redis-buffered-cas", "nats-kv-buffered-cas"])
async def crowded(
    request: pytest.FixtureRequest, crowded_env: dict[str, dict[str, str]]
) -> AsyncIterator[Target]:
    env = crowded_env[request.param]
    connector = connector_class(request.param).from_settings(Settings(env))
    await connector.open()
    try:
        yield Target(connector, request.param, "direct", env, f"t{uuid.uuid4().hex[:12]}/")
    finally:
        await connector.close()


@pytest.mark.parametrize("test", _connector_tests(), ids=lambda test: test.__name__)
async def test_beside_200000_foreign_keys(crowded: Target, test: TestFunction) -> None:
    await test(crowded)
