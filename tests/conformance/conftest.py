"""The conformance suite's fixtures: every connector, directly and through the server.

``connector`` is parametrized over every name in the registry and two modes:
``direct`` builds the backend in the test's event loop; ``http`` talks to a
real connector process over its Unix socket through ``HttpConnector``. Each
behaviour test therefore checks the backend and the protocol mapping.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from asya_state_connectors.client import HttpConnector
from asya_state_connectors.interface import Connector
from asya_state_connectors.registry import CONNECTORS, connector_class
from asya_state_connectors.settings import Settings
from tests.fixtures.connectors import ProcessFactory, env_fixture_name

MODES = ("direct", "http")
# Further setups of a registry connector, each with its own env fixture
# (``connector_env_<name>_<suffix>``): the NATS connector on a 3-member
# cluster with a bucket of 3 replicas (tests/fixtures/nats.py).
VARIANTS = {"nats-kv-buffered-cas.cluster": ("nats-kv-buffered-cas", "cluster")}
SETUPS = [*CONNECTORS, *VARIANTS]
# What the default run asks of each variant (the full matrix, about 30 s
# for the cluster, runs with --soak): objects, conditions and idempotent
# retries, where a replicated bucket differs from a single server. Racing
# writers on the cluster, through a failover, are in
# tests/reliability/test_nats_cluster.py.
VARIANT_MODULES = frozenset({"test_objects.py", "test_conditions.py", "test_idempotent_retries.py"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    deselected = [
        item
        for item in items
        if any(f"{variant}-" in item.nodeid for variant in VARIANTS)
        and item.path.name not in VARIANT_MODULES
    ]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in set(deselected)]


@dataclass
class Target:
    """What a conformance test gets: the connector, how it is reached, and its setup."""

    connector: Connector
    name: str  # the registry name
    mode: str
    env: dict[str, str]
    ns: str  # a key namespace private to this test
    socket: str | None = None
    setup: str = ""  # the registry name, or a variant of it (VARIANTS)

    def key(self, name: str) -> str:
        return self.ns + name

    @property
    def through_server(self) -> bool:
        return self.mode == "http"


async def _open_target(
    request: pytest.FixtureRequest, processes: ProcessFactory, setup: str, mode: str
) -> AsyncIterator[Target]:
    name, suffix = VARIANTS.get(setup, (setup, ""))
    fixture = env_fixture_name(name) + (f"_{suffix}" if suffix else "")
    env: dict[str, str] = request.getfixturevalue(fixture)
    socket = None
    if mode == "direct":
        connector: Connector = connector_class(name).from_settings(Settings(env))
    else:
        socket = processes(name, env, setup).socket_path
        connector = HttpConnector(socket)
    await connector.open()
    try:
        yield Target(connector, name, mode, env, f"t{uuid.uuid4().hex[:12]}/", socket, setup)
    finally:
        await connector.close()


@pytest.fixture(params=[(n, m) for n in SETUPS for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}")
async def target(
    request: pytest.FixtureRequest, connector_processes: ProcessFactory
) -> AsyncIterator[Target]:
    """Every connector, directly and through its server."""
    async for opened in _open_target(request, connector_processes, *request.param):
        yield opened


@pytest.fixture(params=list(SETUPS), ids=lambda n: f"{n}-http")
async def served(
    request: pytest.FixtureRequest, connector_processes: ProcessFactory
) -> AsyncIterator[Target]:
    """Every connector through its server only, for protocol-level tests."""
    async for opened in _open_target(request, connector_processes, request.param, "http"):
        yield opened
