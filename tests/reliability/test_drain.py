"""SIGTERM under load: in-flight requests complete and the connector exits within its grace period."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

from asya_state_cli.connector_process import ConnectorProcess
from asya_state_connectors.client import HttpConnector
from tests.conformance.helpers import get

MiB = 1024 * 1024


async def _trickle(gate: asyncio.Event, parts: int, size: int) -> AsyncIterator[bytes]:
    yield b"x" * size
    await gate.wait()
    for _ in range(parts):
        await asyncio.sleep(0.01)
        yield b"x" * size


async def test_sigterm_with_many_requests_in_flight(tmp_path: Path, socket_dir: Path) -> None:
    process = ConnectorProcess(
        "fs-buffered-cas",
        socket_dir / "drain-load.sock",
        {"STATE_DIR": str(tmp_path), "CONNECTOR_GRACE_SECONDS": "20"},
    ).start()
    clients = [HttpConnector(process.socket_path) for _ in range(16)]
    for client in clients:
        await client.open()
    gate = asyncio.Event()
    uploads = [
        asyncio.create_task(c.write(f"load/{i}.bin", _trickle(gate, 20, 128 * 1024), size=None))
        for i, c in enumerate(clients)
    ]
    await asyncio.sleep(1.0)  # every upload has sent its headers and first chunk
    assert process.process is not None
    process.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    gate.set()
    metas = await asyncio.gather(*uploads)
    status = await asyncio.to_thread(process.process.wait, 25)
    elapsed = time.monotonic() - signalled
    assert status == 0
    assert elapsed < 20, f"drain took {elapsed:.1f}s, beyond the grace period"
    assert all(m.size == 21 * 128 * 1024 for m in metas)
    for client in clients:
        await client.close()

    # Everything acknowledged is stored completely.
    restarted = ConnectorProcess(
        "fs-buffered-cas", socket_dir / "drain-load2.sock", {"STATE_DIR": str(tmp_path)}
    )
    with restarted:
        reader = HttpConnector(restarted.socket_path)
        await reader.open()
        for i in range(16):
            assert await get(reader, f"load/{i}.bin") == b"x" * 21 * 128 * 1024
        await reader.close()


async def _never_ending(gate: asyncio.Event) -> AsyncIterator[bytes]:
    yield b"y" * 1024
    await gate.wait()  # a client that stalls forever
    yield b""


async def test_a_stalled_request_cannot_hold_the_exit_past_the_grace_period(
    tmp_path: Path, socket_dir: Path
) -> None:
    process = ConnectorProcess(
        "fs-buffered-cas",
        socket_dir / "drain-stall.sock",
        {"STATE_DIR": str(tmp_path), "CONNECTOR_GRACE_SECONDS": "2"},
    ).start()
    client = HttpConnector(process.socket_path)
    await client.open()
    gate = asyncio.Event()
    upload = asyncio.create_task(client.write("stall.bin", _never_ending(gate), size=None))
    await asyncio.sleep(0.5)
    assert process.process is not None
    process.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    status = await asyncio.to_thread(process.process.wait, 15)
    assert time.monotonic() - started < 6, "the grace period bounds the exit"
    assert status == 0
    upload.cancel()
    await client.close()
    assert not (tmp_path / "stall.bin").exists(), "an unfinished upload is never committed"
