"""Connector observability: JSON logs without secrets, Prometheus metrics, no stray listeners."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from asya_state_cli.connector_process import ConnectorProcess
from asya_state_cli.servers.base import free_port
from asya_state_connectors.client import HttpConnector
from asya_state_connectors.errors import Conflict
from asya_state_connectors.interface import WriteCondition
from tests.conformance.helpers import put

SECRET_BODY = b"top-secret-body-bytes"
SECRET_KEY = "customers/alice-ssn.json"


def _tcp_listeners(pid: int) -> list[tuple[str, int]]:
    return [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]


async def test_logs_are_json_and_never_carry_bodies_or_keys(
    tmp_path: Path, socket_dir: Path
) -> None:
    env = {
        "STATE_DIR": str(tmp_path),
        "LOG_LEVEL": "DEBUG",
        "AWS_SECRET_ACCESS_KEY": "hunter2-secret",
    }
    process = ConnectorProcess("fs-buffered-cas", socket_dir / "obs-log.sock", env).start()
    try:
        client = HttpConnector(process.socket_path)
        await client.open()
        meta = await put(client, SECRET_KEY, SECRET_BODY)
        await client.read(SECRET_KEY)
        with pytest.raises(Conflict):
            await put(client, SECRET_KEY, b"x", condition=WriteCondition(if_match="stale"))
        await client.close()
        assert not _tcp_listeners(process.pid), "no TCP listener without METRICS_PORT"
    finally:
        process.stop()
    lines = [line for line in process.log_tail(500).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    writes = [r for r in records if r.get("operation") == "write"]
    assert {r["status"] for r in writes} == {200, 409}
    assert all({"request_id", "key_hash", "duration_ms", "connector"} <= set(r) for r in writes)
    text = "\n".join(lines)
    for secret in (SECRET_BODY.decode(), SECRET_KEY, "hunter2-secret", meta.etag):
        assert secret not in text, f"{secret!r} leaked into the connector log"


async def test_metrics_on_the_socket_and_on_an_explicit_port(
    tmp_path: Path, socket_dir: Path
) -> None:
    port = free_port()
    env = {"STATE_DIR": str(tmp_path), "METRICS_PORT": str(port), "METRICS_HOST": "127.0.0.1"}
    process = ConnectorProcess("fs-buffered-cas", socket_dir / "obs-met.sock", env).start()
    try:
        client = HttpConnector(process.socket_path)
        await client.open()
        first = await put(client, "m/a.txt", b"12345")
        with pytest.raises(Conflict):
            await put(client, "m/a.txt", b"x", condition=WriteCondition(if_match=first.etag + "0"))
        await client.close()
        assert _tcp_listeners(process.pid) == [("127.0.0.1", port)]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/info", timeout=5)
        assert refused.value.code == 404, "the metrics port serves nothing but /metrics"
    finally:
        process.stop()
    assert (
        'asya_state_requests_total{connector="fs-buffered-cas",operation="write",status="200"} 1'
        in text
    )
    assert 'asya_state_cas_conflicts_total{connector="fs-buffered-cas"} 1' in text
    assert 'asya_state_bytes_total{connector="fs-buffered-cas",direction="in"} 6' in text
    assert (
        'asya_state_request_duration_seconds_count{connector="fs-buffered-cas",operation="write"} 2'
        in text
    )


def test_socket_mode_is_owner_and_group_only(tmp_path: Path, socket_dir: Path) -> None:
    with ConnectorProcess("memory", socket_dir / "obs-mode.sock", {}) as process:
        mode = Path(process.socket_path).stat().st_mode & 0o777
        assert mode == 0o660
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(process.socket_path)
