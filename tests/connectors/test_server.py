"""The connector server as a process: bounded memory, graceful drain, hostile input.

Runs ``asya-state connector fs-buffered-cas`` as a real child process and
talks to it over its Unix socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from asya_state_cli.commands.probe import check
from asya_state_cli.connector_process import ConnectorProcess
from asya_state_connectors.client import HttpConnector
from asya_state_connectors.errors import Draining
from asya_state_connectors.server.app import header_text
from tests.conformance.helpers import chunks_of, pattern_body, pattern_digest
from tests.memory import PeakRss
from tests.rawhttp import exchange

MiB = 1024 * 1024


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def fs_connector(state_dir: Path, socket_dir: Path) -> Iterator[ConnectorProcess]:
    process = ConnectorProcess(
        "fs-buffered-cas",
        socket_dir / f"srv-{os.getpid()}-{time.monotonic_ns()}.sock",
        {"STATE_DIR": str(state_dir), "CONNECTOR_GRACE_SECONDS": "10"},
    )
    with process:
        yield process


async def test_one_gib_streams_through_with_bounded_connector_memory(
    fs_connector: ConnectorProcess,
) -> None:
    size = 1024 * MiB
    client = HttpConnector(fs_connector.socket_path)
    await client.open()
    try:
        with PeakRss(fs_connector.pid) as rss:
            await client.write("big/weights.bin", pattern_body(size), size=None)
            stream = await client.read("big/weights.bin")
            digest = hashlib.sha256()
            async for chunk in stream.chunks:
                digest.update(chunk)
            await stream.aclose()
    finally:
        await client.close()
    assert digest.hexdigest() == pattern_digest(size)
    assert rss.peak < 100 * MiB, (
        f"connector peaked at {rss.peak / MiB:.0f} MiB for a 1 GiB round trip"
    )


async def _slow_body(first: bytes, gate: asyncio.Event, rest: bytes) -> AsyncIterator[bytes]:
    yield first
    await gate.wait()
    async for chunk in chunks_of(rest, 64 * 1024):
        yield chunk


async def _wait_for_temp_file(directory: Path) -> None:
    """The fs connector streams bodies over 1 MiB to a temporary file: the upload is in flight."""
    for _ in range(500):
        if directory.exists() and any(p.name.startswith(".asya-tmp-") for p in directory.iterdir()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the upload never reached the connector")


async def test_sigterm_drains_in_flight_requests(
    fs_connector: ConnectorProcess, state_dir: Path
) -> None:
    in_flight = HttpConnector(fs_connector.socket_path)
    idle = HttpConnector(fs_connector.socket_path)
    await in_flight.open()
    await idle.open()
    try:
        await idle.check_health()  # leaves a kept-alive connection in idle's pool
        gate = asyncio.Event()
        upload = asyncio.create_task(
            in_flight.write(
                "drain/file.bin", _slow_body(b"a" * 2 * MiB, gate, b"b" * 500_000), size=None
            )
        )
        await _wait_for_temp_file(state_dir / "drain")
        assert fs_connector.process is not None
        fs_connector.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        # A request on a kept-alive connection is turned away with 503 draining ...
        with pytest.raises(Draining):
            await idle.check_health()
        # ... and new connections are refused: the socket is gone while draining.
        assert not os.path.exists(fs_connector.socket_path)
        late = HttpConnector(fs_connector.socket_path)
        with pytest.raises(ConnectionError, match="unreachable"):
            await late.open()
        await late.close()
        gate.set()
        meta = await asyncio.wait_for(upload, 10)
        assert meta.size == 2 * MiB + 500_000, "the in-flight upload completed during the drain"
        exit_status = await asyncio.to_thread(fs_connector.process.wait, 10)
        assert exit_status == 0
    finally:
        await in_flight.close()
        await idle.close()


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET /v1/objects/x HTTP/9.9\r\n\r\n",
    b"GET /v1/objects/x HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
    b"GET /v1/objects/x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    b"PUT /v1/objects/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n",
    b"PUT /v1/objects/x HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"PUT /v1/objects/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /v1/objects/x HTTP/1.1\r\nHost: x\r\nRange: bytes=99999999999999999999-\r\n\r\n",
    b"GET /v1/objects/x HTTP/1.1\r\nHost: x\r\nRange: bytes=5-1,3-4\r\n\r\n",
    b"BREW /v1/objects/x HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/objects/%ZZ%%% HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/list?limit=abc&prefix=%FF HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PUT /v1/xattrs/x?name=../../etc HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
    b"GET /v1/objects/" + b"k/" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x00\x01\x02\xff" * 100,
]


@pytest.mark.parametrize("payload", MALFORMED, ids=[f"case{i}" for i in range(len(MALFORMED))])
def test_malformed_requests_never_crash_or_500(
    fs_connector: ConnectorProcess, payload: bytes
) -> None:
    reply = exchange(fs_connector.socket_path, payload)
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/"), f"no HTTP answer: {reply[:100]!r}"
    assert b" 500 " not in status_line, f"client error answered with {status_line!r}"
    assert fs_connector.process is not None
    assert fs_connector.process.poll() is None, "connector died"
    healthy, detail = check(fs_connector.socket_path, ready=True, timeout=3)
    assert healthy, detail


def test_error_headers_carry_a_bounded_printable_message() -> None:
    """A message may hold any key; as a header it is one printable ASCII line."""
    text = header_text("no object at 'bad\r\nX-Injected: 1\x00 caf\u00e9" + "x" * 500)
    assert text.isascii()
    assert text.isprintable()
    assert len(text) <= 200
    assert text.startswith("no object at 'bad\\r\\nX-Injected: 1\\x00 caf\\xe9")


@pytest.mark.parametrize(
    ("name", "env", "message"),
    [
        ("no-such-connector", {}, "unknown connector 'no-such-connector'"),
        ("fs-buffered-cas", {}, "STATE_DIR is required"),
        ("redis-buffered-cas", {}, "REDIS_URL"),
        (
            "s3-buffered-cas",
            {"STATE_BUCKET": "b", "AWS_PROFILE": "no-such-profile-xyz"},
            "no-such-profile-xyz",
        ),
        (
            "fs-buffered-cas",
            {"STATE_DIR": "/tmp", "METRICS_PORT": "abc"},
            "METRICS_PORT must be an integer",
        ),
    ],
)
def test_configuration_errors_exit_2_naming_the_problem(
    name: str, env: dict[str, str], message: str, socket_dir: Path
) -> None:
    import subprocess
    import sys

    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STATE_", "REDIS_", "AWS_", "METRICS_"))
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asya_state_cli",
            "connector",
            name,
            "--socket",
            str(socket_dir / "cfg.sock"),
        ],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
