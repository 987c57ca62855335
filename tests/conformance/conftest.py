"""The conformance suite's fixtures: every connector, directly and through the server.

``connector`` is parametrized over every name in the registry and two modes:
``direct`` builds the backend in the test's event loop; ``http`` talks to a
real connector process over its Unix socket through ``HttpConnector``. Each
behaviour test therefore checks the backend and the protocol mapping.

A connector may also run against another topology of its backend (``VARIANTS``:
a Redis Cluster beside standalone Redis, a 3-member NATS cluster with a bucket
of 3 replicas beside one nats-server): its environment comes from
``connector_env_<name>_<variant>``. A variant's tests carry the mark of its
name; the default run keeps what ``VARIANT_DEFAULTS`` names of them (the rest
run with ``--soak``), so the whole matrix stays within the suite's time.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from _pytest.mark import ParameterSet

from asya_state_connectors.client import HttpConnector
from asya_state_connectors.interface import Connector
from asya_state_connectors.registry import CONNECTORS, connector_class
from asya_state_connectors.settings import Settings
from tests.fixtures.connectors import ProcessFactory, env_fixture_name

MODES = ("direct", "http")
# Other topologies a connector is checked against, by registry name.
VARIANTS: dict[str, tuple[str, ...]] = {
    "redis-buffered-cas": ("cluster",),
    "nats-kv-buffered-cas": ("cluster",),
}
# What the default run keeps of each variant: its modes, and its test modules
# (None: every one); the rest runs with --soak. The Redis Cluster runs the whole
# suite directly (the protocol mapping is the standalone one). The NATS cluster
# runs, both ways, what a replicated bucket changes: objects, conditions and
# idempotent retries; racing writers through a failover are in
# tests/reliability/test_nats_cluster.py.
VARIANT_DEFAULTS: dict[tuple[str, str], tuple[tuple[str, ...], frozenset[str] | None]] = {
    ("redis-buffered-cas", "cluster"): (("direct",), None),
    ("nats-kv-buffered-cas", "cluster"): (
        MODES,
        frozenset({"test_objects.py", "test_conditions.py", "test_idempotent_retries.py"}),
    ),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside --soak, drop a variant's tests of modules its defaults leave out."""
    if config.getoption("--soak"):
        return
    dropped = []
    for item in items:
        for (name, variant), (_, modules) in VARIANT_DEFAULTS.items():
            chosen = modules is None or item.path.name in modules
            if f"[{name}-{variant}-" in item.nodeid and not chosen:
                dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(dropped)
        items[:] = [item for item in items if item not in gone]


def _params() -> list[ParameterSet]:
    params = [pytest.param((n, m, ""), id=f"{n}-{m}") for n in CONNECTORS for m in MODES]
    for name, variants in VARIANTS.items():
        for variant in variants:
            for mode in MODES:
                marks = [getattr(pytest.mark, variant)]
                if mode not in VARIANT_DEFAULTS[(name, variant)][0]:
                    marks.append(pytest.mark.soak)
                params.append(
                    pytest.param((name, mode, variant), id=f"{name}-{variant}-{mode}", marks=marks)
                )
    return params


@dataclass
class Target:
    """What a conformance test gets: the connector, how it is reached, and its setup."""

    connector: Connector
    name: str
    mode: str
    env: dict[str, str]
    ns: str  # a key namespace private to this test
    socket: str | None = None

    def key(self, name: str) -> str:
        return self.ns + name

    @property
    def through_server(self) -> bool:
        return self.mode == "http"


async def _open_target(
    request: pytest.FixtureRequest,
    processes: ProcessFactory,
    name: str,
    mode: str,
    variant: str = "",
) -> AsyncIterator[Target]:
    env: dict[str, str] = request.getfixturevalue(env_fixture_name(name, variant))
    socket = None
    if mode == "direct":
        connector: Connector = connector_class(name).from_settings(Settings(env))
    else:
        socket = processes(name, env, variant).socket_path
        connector = HttpConnector(socket)
    await connector.open()
    try:
        yield Target(connector, name, mode, env, f"t{uuid.uuid4().hex[:12]}/", socket)
    finally:
        await connector.close()


@pytest.fixture(params=_params())
async def target(
    request: pytest.FixtureRequest, connector_processes: ProcessFactory
) -> AsyncIterator[Target]:
    """Every connector, directly and through its server (and every variant's topology)."""
    async for opened in _open_target(request, connector_processes, *request.param):
        yield opened


@pytest.fixture(params=list(CONNECTORS), ids=lambda n: f"{n}-http")
async def served(
    request: pytest.FixtureRequest, connector_processes: ProcessFactory
) -> AsyncIterator[Target]:
    """Every connector through its server only, for protocol-level tests."""
    async for opened in _open_target(request, connector_processes, request.param, "http"):
        yield opened
