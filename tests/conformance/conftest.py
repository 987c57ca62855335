"""The conformance suite's fixtures: every connector, directly and through the server.

``connector`` is parametrized over every name in the registry and two modes:
``direct`` builds the backend in the test's event loop; ``http`` talks to a
real connector process over its Unix socket through ``HttpConnector``. Each
behaviour test therefore checks the backend and the protocol mapping.

A connector may also run against another topology of its backend (``VARIANTS``:
Redis Cluster beside standalone Redis): its environment comes from
``connector_env_<name>_<variant>``. A variant's tests carry the mark of its
name; the default run keeps ``DEFAULT_VARIANT_MODES`` of them (the rest run
with ``--soak``), so the whole matrix stays within the suite's time.
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
VARIANTS: dict[str, tuple[str, ...]] = {"redis-buffered-cas": ("cluster",)}
# The modes a variant runs in by default; the others need --soak.
DEFAULT_VARIANT_MODES = ("direct",)


def _params() -> list[ParameterSet]:
    params = [pytest.param((n, m, ""), id=f"{n}-{m}") for n in CONNECTORS for m in MODES]
    for name, variants in VARIANTS.items():
        for variant in variants:
            for mode in MODES:
                marks = [getattr(pytest.mark, variant)]
                if mode not in DEFAULT_VARIANT_MODES:
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
