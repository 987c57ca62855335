"""Handlers of every shape for the long-lived-pod tests: counters, blind overwrites, races.

Plain file I/O on /state, as an actor author writes it. ``pause`` widens
the window between the read and the write so that racing pods overlap.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any


def read(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def write(path: str, value: object) -> None:
    with open(path, "w") as f:
        json.dump(value, f)


def increment(payload: dict[str, Any]) -> dict[str, Any]:
    count = (read(payload["path"]) or 0) + 1
    time.sleep(payload["pause"])
    write(payload["path"], count)
    return {"count": count}


async def increment_async(payload: dict[str, Any]) -> dict[str, Any]:
    count = (read(payload["path"]) or 0) + 1
    await asyncio.sleep(payload["pause"])
    write(payload["path"], count)
    return {"count": count}


def increment_generator(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    count = (read(payload["path"]) or 0) + 1
    yield {"read": count - 1}  # the write after the yield keeps the read's condition
    time.sleep(payload["pause"])
    write(payload["path"], count)
    yield {"count": count}


async def increment_async_generator(payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    count = (read(payload["path"]) or 0) + 1
    yield {"read": count - 1}
    await asyncio.sleep(payload["pause"])
    write(payload["path"], count)
    yield {"count": count}


class Counter:
    """A class handler, instantiated once by the runtime."""

    def __init__(self) -> None:
        self.calls = 0

    def increment(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return increment(payload)


async def note(payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """Write ``{"by": ...}`` to ``path``, reading it first if asked.

    With ``interloper`` (a local marker file), the first attempt has another
    pod overwrite the key between this handler's read and its write.
    """
    path = payload["path"]
    if payload["read"]:
        read(path)
    marker = payload.get("interloper")
    if marker and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        other_pod_writes(path, {"by": "interloper"})
    write(path, {"by": payload["by"]})
    yield {"wrote": payload["by"]}


def other_pod_writes(path: str, value: object) -> None:
    """A separate process with its own runtime and no handler: another pod."""
    env = {k: v for k, v in os.environ.items() if k != "ASYA_HANDLER"}
    code = f"import json; json.dump({value!r}, open({path!r}, 'w'))"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


async def race(payload: dict[str, Any]) -> dict[str, int]:
    """``workers`` tasks, threads or to_thread calls each add ``increments`` to one counter."""
    path, how = payload["path"], payload["how"]
    totals = {"successes": 0, "conflicts": 0}
    lock = threading.Lock()

    def tally(successes: int, conflicts: int) -> None:
        with lock:
            totals["successes"] += successes
            totals["conflicts"] += conflicts

    async def in_task() -> None:
        done = conflicts = 0
        while done < payload["increments"]:
            try:
                count = read(path) or 0
                await asyncio.sleep(0)  # every other task reads the same revision
                write(path, count + 1)
                done += 1
            except FileExistsError:
                conflicts += 1
        tally(done, conflicts)

    def in_thread() -> None:
        done = conflicts = 0
        while done < payload["increments"]:
            try:
                count = read(path) or 0
                time.sleep(0.001)  # let another thread read the same revision
                write(path, count + 1)
                done += 1
            except FileExistsError:
                conflicts += 1
        tally(done, conflicts)

    workers = range(payload["workers"])
    if how == "tasks":
        await asyncio.gather(*(in_task() for _ in workers))
    elif how == "to_thread":
        await asyncio.gather(*(asyncio.to_thread(in_thread) for _ in workers))
    else:
        threads = [threading.Thread(target=in_thread) for _ in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return totals
