"""A connector whose backend is missing or unreachable fails its startup check in seconds, saying why.

The runner waits for each connector's readiness before the first message;
a bucket that does not exist, a closed port or a server that never answers
must end that wait with the connector's own reason (the bucket, the URL or
server, the cause), not after a long timeout with a bare status. Each case
runs against a real server, bounded well below the 30 s such a check used
to take.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from asya_state_cli.connector_process import ConnectorProcess, ConnectorStartError
from asya_state_cli.servers.base import free_port
from asya_state_cli.servers.fake_gcs import FakeGcsServer
from asya_state_cli.servers.moto import MotoServer

from .helpers import asya_run

BOUND = pytest.mark.timeout(25)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a frozen server)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


Case = Callable[[pytest.FixtureRequest, int], tuple[str, dict[str, str], list[str]]]


def _s3_missing_bucket(
    request: pytest.FixtureRequest, port: int
) -> tuple[str, dict[str, str], list[str]]:
    server: MotoServer = request.getfixturevalue("moto_server")
    return (
        "s3-buffered-cas",
        server.connector_env("no-such-bucket"),
        ["the bucket 'no-such-bucket' does not exist"],
    )


def _gcs_missing_bucket(
    request: pytest.FixtureRequest, port: int
) -> tuple[str, dict[str, str], list[str]]:
    server: FakeGcsServer = request.getfixturevalue("fake_gcs_server")
    return (
        "gcs-buffered-cas",
        server.connector_env("no-such-bucket"),
        ["the bucket 'no-such-bucket' does not exist"],
    )


def _s3_closed_port(
    request: pytest.FixtureRequest, port: int
) -> tuple[str, dict[str, str], list[str]]:
    env = request.getfixturevalue("moto_server").connector_env("suite-cas")
    env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    return "s3-buffered-cas", env, ["S3 is unreachable", f"http://127.0.0.1:{port}/suite-cas"]


def _gcs_closed_port(
    request: pytest.FixtureRequest, port: int
) -> tuple[str, dict[str, str], list[str]]:
    env = request.getfixturevalue("fake_gcs_server").connector_env("suite-cas")
    env["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    return "gcs-buffered-cas", env, ["GCS is unreachable", f"port={port}", "Connection refused"]


def _redis_closed_port(
    request: pytest.FixtureRequest, port: int
) -> tuple[str, dict[str, str], list[str]]:
    env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    return (
        "redis-buffered-cas",
        env,
        ["Redis is unreachable", f"127.0.0.1:{port}", "Connection refused"],
    )


def _nats_closed_port(
    request: pytest.FixtureRequest, port: int
) -> tuple[str, dict[str, str], list[str]]:
    env = {"NATS_URL": f"nats://127.0.0.1:{port}"}
    return "nats-kv-buffered-cas", env, [f"NATS_URL nats://127.0.0.1:{port}", "Connection refused"]


CASES: dict[str, Case] = {
    "s3-missing-bucket": _s3_missing_bucket,
    "gcs-missing-bucket": _gcs_missing_bucket,
    "s3-closed-port": _s3_closed_port,
    "gcs-closed-port": _gcs_closed_port,
    "redis-closed-port": _redis_closed_port,
    "nats-closed-port": _nats_closed_port,
}


@BOUND
@pytest.mark.parametrize("case", sorted(CASES))
def test_startup_check_names_the_missing_or_unreachable_backend(
    case: str, request: pytest.FixtureRequest, socket_dir: Path
) -> None:
    connector, env, expected = CASES[case](request, free_port())
    # A short wait for the backend keeps the test quick; the runner's default is a few seconds.
    process = ConnectorProcess(
        connector, socket_dir / f"startup-{case}.sock", env, backend_timeout=1.0
    )
    with pytest.raises(ConnectorStartError) as failure:
        process.start()
    message = str(failure.value)
    assert message.startswith(f"connector {connector}: the backend is not ready: "), message
    for part in expected:
        assert part in message, message
    assert process.process is None, "a connector that failed its startup check is stopped"


@BOUND
def test_a_backend_that_never_answers_fails_the_check_saying_so(
    silent_port: int, socket_dir: Path
) -> None:
    env = {"REDIS_URL": f"redis://127.0.0.1:{silent_port}/0"}
    process = ConnectorProcess(
        "redis-buffered-cas", socket_dir / "startup-silent.sock", env, backend_timeout=1.0
    )
    with pytest.raises(ConnectorStartError) as failure:
        process.start()
    assert str(failure.value) == (
        "connector redis-buffered-cas: the backend is not ready: redis-buffered-cas: "
        "the backend did not answer the readiness check within 2s"
    )


@BOUND
def test_the_runner_stops_at_a_missing_bucket_with_the_connectors_reason(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    result = asya_run(
        "queue_handlers.record",
        [{"n": 1}],
        handler_path=Path(__file__).parent,
        mounts=["/state=s3-buffered-cas"],
        env=moto_server.connector_env("no-such-bucket"),
        timeout=20,
    )
    assert result.status == 1
    assert result.outputs == []
    assert result.stderr == (
        "asya-state run: connector s3-buffered-cas: the backend is not ready: "
        "the bucket 'no-such-bucket' does not exist\n"
    )
