"""Contention: the cas-counter example with many replicas racing on one key.

Owns: running ``examples/cas-counter`` through the local runner's pods and
dispatcher (each replica its own handler and connector process, all on the
same backend, CAS conflicts requeued with backoff exactly as ``asya-state
run`` does), timing the whole batch, and reading the final count back
through a connector.

Must not: change the runner's retry semantics beyond allowing enough
attempts for every message to land.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from asya_state_connectors.client import HttpConnector

from ..runner.dispatch import Dispatcher, RetryPolicy, run_pods
from ..runner.mounts import Mount
from ..runner.pod import Pod
from .results import ContentionRow
from .rigs import Rig

HANDLER = "counter.update_state_with_cas"
COUNTER_KEY = "counter.json"
# The runner's backoff, with room for every message to land however many replicas race.
POLICY = RetryPolicy(base=0.05, cap=2.0, max_attempts=1000)


def example_dir() -> Path | None:
    """``examples/cas-counter`` of the source checkout this CLI runs from, if there is one."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "examples" / "cas-counter"
        if (candidate / "counter.py").is_file():
            return candidate
    return None


def run_contention(
    rig: Rig, connector: str, example: Path, workdir: Path, replicas: int, messages: int
) -> ContentionRow:
    mounts = [Mount("shared", "/state/shared", connector, env={"STATE_PREFIX": "contention/"})]
    pods = [
        Pod(
            index,
            mounts,
            HANDLER,
            workdir=workdir,
            handler_path=example,
            connector_env=rig.connector_env,
        )
        for index in range(replicas)
    ]
    dispatcher = Dispatcher(POLICY, out=io.StringIO(), err=io.StringIO(), seed=1)
    lines = [json.dumps({"n": n}) + "\n" for n in range(messages)]
    try:
        with ThreadPoolExecutor(replicas) as starting:
            for started in [starting.submit(pod.start) for pod in pods]:
                started.result()
        begin = time.perf_counter()
        run_pods(dispatcher, list(pods), lines)
        seconds = time.perf_counter() - begin
        final = asyncio.run(_read_count(pods[0].connectors[0].socket_path))
    finally:
        for pod in pods:
            pod.stop()
    summary = dispatcher.summary
    return ContentionRow(
        rig.name,
        connector,
        replicas,
        messages,
        seconds,
        summary.conflicts,
        summary.failed,
        final,
    )


async def _read_count(socket_path: str) -> int | None:
    client = HttpConnector(socket_path)
    await client.open()
    try:
        stream = await client.read(COUNTER_KEY)
        try:
            body = b"".join([chunk async for chunk in stream.chunks])
        finally:
            await stream.aclose()
    finally:
        await client.close()
    count = json.loads(body).get("count")
    return count if isinstance(count, int) else None
