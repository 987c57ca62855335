"""A racing writer process for the conformance suite's multi-process CAS test.

Each process builds its own connector (directly, or through the server's
socket), and in every round: waits for all, reads the revision, waits for
all, writes conditionally, reports whether it won.
"""

from __future__ import annotations

import asyncio
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from asya_state_connectors.client import HttpConnector
from asya_state_connectors.errors import Conflict
from asya_state_connectors.interface import Connector, WriteCondition
from asya_state_connectors.registry import connector_class
from asya_state_connectors.settings import Settings

from .helpers import chunks_of


def race(
    worker: int,
    name: str,
    env: dict[str, str],
    socket: str | None,
    key: str,
    rounds: int,
    barrier: Barrier,
    results: Queue[Any],
) -> None:
    asyncio.run(_race(worker, name, env, socket, key, rounds, barrier, results))


async def _race(
    worker: int,
    name: str,
    env: dict[str, str],
    socket: str | None,
    key: str,
    rounds: int,
    barrier: Barrier,
    results: Queue[Any],
) -> None:
    connector: Connector = (
        HttpConnector(socket) if socket else connector_class(name).from_settings(Settings(env))
    )
    await connector.open()
    try:
        for round_no in range(rounds):
            barrier.wait(60)
            if round_no == 0:
                condition = WriteCondition(if_none_match=True)
            else:
                condition = WriteCondition(if_match=(await connector.stat(key)).etag)
            barrier.wait(60)  # every racer has read before anyone writes
            payload = f"{worker}:{round_no}".encode()
            try:
                await connector.write(
                    key, chunks_of(payload), size=len(payload), condition=condition
                )
                won = True
            except Conflict:
                won = False
            results.put((round_no, worker, won))
            barrier.wait(60)
    finally:
        await connector.close()
