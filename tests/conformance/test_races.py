"""Conformance: processes racing conditional writes on one key get exactly one winner per round.

Round 0 races create-only writes on a missing key; later rounds race writes
conditional on the revision every racer read. Through the server the racers
share one connector process; directly, each has its own backend client, so
the backend itself must arbitrate.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import defaultdict

import pytest

from asya_state_connectors.interface import Capability

from .conftest import Target
from .helpers import get
from .racer import race

RACERS = 4
ROUNDS = 6


async def test_exactly_one_winner_per_round(target: Target) -> None:
    if not (
        target.connector.supports(Capability.CAS)
        and target.connector.supports(Capability.CREATE_ONLY)
    ):
        pytest.skip(f"{target.name} declares no compare-and-swap")
    if target.name == "memory" and not target.through_server:
        pytest.skip("the memory store is private to each process")
    key = target.key("contended.json")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(RACERS)
    results = context.Queue()
    processes = [
        context.Process(
            target=race,
            args=(i, target.name, target.env, target.socket, key, ROUNDS, barrier, results),
        )
        for i in range(RACERS)
    ]
    for process in processes:
        process.start()
    outcomes = [await asyncio.to_thread(results.get, timeout=120) for _ in range(RACERS * ROUNDS)]
    for process in processes:
        await asyncio.to_thread(process.join, 30)
        assert process.exitcode == 0
    winners: dict[int, list[int]] = defaultdict(list)
    for round_no, worker, won in outcomes:
        if won:
            winners[round_no].append(worker)
    assert {r: len(w) for r, w in winners.items()} == dict.fromkeys(range(ROUNDS), 1), winners
    final = winners[ROUNDS - 1][0]
    assert await get(target.connector, key) == f"{final}:{ROUNDS - 1}".encode()
