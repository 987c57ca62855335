"""The benchmark's actor handler: ``asya_state_cli.bench.handler.run``.

Owns: executing one benchmark task per message inside a pod's handler
process, where the runtime hooks are active exactly as in an actor, and
answering with raw measurements (nanoseconds per operation, or seconds for
a batch). The message names the store (a state mount's path, a local
directory or a backend client's settings); stores are built once and kept
for the life of the process, like a handler's own clients.

Must not: aggregate, judge or print numbers (the orchestrator does), or
import a backend client at module import.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from .stores import LARGE_BLOCK, BenchError, Store, make_store

_stores: dict[str, Store] = {}
_block: list[bytes] = []


def _store(config: dict[str, str]) -> Store:
    name = json.dumps(config, sort_keys=True)
    store = _stores.get(name)
    if store is None:
        store = _stores[name] = make_store(config)
    return store


def _large_block() -> bytes:
    if not _block:
        _block.append(os.urandom(LARGE_BLOCK))
    return _block[0]


def run(payload: dict[str, Any]) -> dict[str, Any]:
    """Run the task in ``payload`` and return its measurements."""
    task = payload["task"]
    if task.startswith("transfer_"):
        from .transfer_clients import run_task

        return run_task(payload, _large_block())
    store = _store(payload["store"])
    if task == "prepare":
        for directory in payload["dirs"]:
            store.prepare_dir(directory)
        return {}
    if task == "timed":
        return {"ns": store.timed(payload["op"], payload["keys"], payload["size"])}
    if task == "concurrent":
        seconds = store.concurrent(
            payload["op"], payload["keys"], payload["size"], payload["threads"]
        )
        return {"seconds": seconds}
    if task == "remove":
        store.remove(payload["key"])
        return {}
    if task == "large_write":
        start = time.perf_counter()
        store.write_large(payload["key"], payload["size"], _large_block())
        return {"seconds": time.perf_counter() - start}
    if task == "large_read":
        start = time.perf_counter()
        count = store.read_large(payload["key"])
        seconds = time.perf_counter() - start
        if count != payload["size"]:
            raise BenchError(
                f"read {count} bytes of {payload['key']!r}, expected {payload['size']}"
            )
        return {"seconds": seconds}
    raise BenchError(f"unknown task {task!r}")
