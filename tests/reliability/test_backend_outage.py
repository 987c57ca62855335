"""A backend restarted mid-run, seen from the handler: errors during the outage, nothing corrupt after.

Each test runs a local pod (handler process with the runtime hooks, a real
connector process) against its own backend server, writes objects, stops
the server, checks what the handler sees, starts the server again on the
same port and checks that every object reads back byte-exact and that new
writes succeed.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from asya_state_cli.runner.mounts import Mount
from asya_state_cli.runner.pod import Pod
from asya_state_cli.servers.base import LoopbackServer
from asya_state_cli.servers.moto import MotoServer
from asya_state_cli.servers.nats import NatsServer
from asya_state_cli.servers.redis import RedisServer

HERE = Path(__file__).parent
OUTAGE_ERRORS = ("ConnectionError", "TimeoutError", "OSError")


class DurableRedis(RedisServer):
    """Redis with an append-only file, so a restart keeps the data (as a production Redis would)."""

    def command(self) -> Sequence[str]:
        args = list(super().command())
        args[args.index("--appendonly") + 1] = "yes"
        return [*args, "--appendfsync", "always"]


def _redis() -> tuple[LoopbackServer, str, dict[str, str], bool]:
    server = DurableRedis().start()
    return server, "redis-buffered-cas", {"REDIS_URL": server.url, "STATE_PREFIX": "outage"}, True


def _nats() -> tuple[LoopbackServer, str, dict[str, str], bool]:
    server = NatsServer().start()
    return server, "nats-kv-buffered-cas", {"NATS_URL": server.url, "STATE_PREFIX": "outage"}, True


def _moto() -> tuple[LoopbackServer, str, dict[str, str], bool]:
    server = MotoServer().start()
    server.create_bucket("outage")
    # moto keeps objects in memory only: a restart loses them, so only
    # the outage errors and recovery of new writes are checked.
    return server, "s3-buffered-cas", server.connector_env("outage", "p"), False


BACKENDS: dict[str, Callable[[], tuple[LoopbackServer, str, dict[str, str], bool]]] = {
    "redis": _redis,
    "nats": _nats,
    "moto": _moto,
}


@pytest.fixture(params=sorted(BACKENDS))
def rig(request: pytest.FixtureRequest) -> Iterator[tuple[LoopbackServer, Pod, bool]]:
    server, connector, env, durable = BACKENDS[request.param]()
    workdir = tempfile.TemporaryDirectory(prefix="asya-outage-", dir="/tmp")
    mount = Mount("state", "/state", connector, "buffered", env)
    pod = Pod(
        0,
        [mount],
        "fault_handlers.handle",
        workdir=Path(workdir.name),
        handler_path=HERE,
        connector_env={},
    )
    try:
        pod.start()
        yield server, pod, durable
    finally:
        pod.stop()
        server.cleanup()
        workdir.cleanup()


def call(pod: Pod, op: str, **payload: Any) -> dict[str, Any]:
    return pod.handle(0, {"op": op, **payload})


RECOVERY_SECONDS = 20.0


def _first_success(pod: Pod, op: str, **payload: Any) -> dict[str, Any]:
    """Retry as a requeued message would, until the connector has reconnected (bounded)."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        reply = call(pod, op, **payload)
        if "outputs" in reply or time.monotonic() > deadline:
            return reply
        assert reply["error"].split(":")[0] in OUTAGE_ERRORS, reply["error"]
        time.sleep(0.2)


def test_backend_restart_mid_run(rig: tuple[LoopbackServer, Pod, bool]) -> None:
    server, pod, durable = rig
    written = {}
    for i in range(5):
        reply = call(pod, "write", path=f"/state/objs/{i}.bin", fill=chr(ord("a") + i), mib=1)
        assert "outputs" in reply, reply
        written[i] = reply["outputs"][0]["sha256"]

    server.stop()
    for op, payload in (
        ("read", {"path": "/state/objs/0.bin"}),
        ("write", {"path": "/state/objs/x.bin", "fill": "z", "mib": 1}),
    ):
        reply = call(pod, op, **payload)
        assert "error" in reply, f"{op} during the outage succeeded"
        assert reply["error"].split(":")[0] in OUTAGE_ERRORS, reply["error"]
        assert not reply["error"].startswith("FileNotFoundError")

    server.start()
    if not durable:
        server_with_bucket = server
        assert isinstance(server_with_bucket, MotoServer)
        server_with_bucket.create_bucket("outage")
    after = _first_success(pod, "write", path="/state/objs/new.bin", fill="n", mib=1)
    assert "outputs" in after, f"no recovery within {RECOVERY_SECONDS}s of the restart: {after}"
    if durable:
        for i, digest in written.items():
            reply = call(pod, "read", path=f"/state/objs/{i}.bin")
            assert reply["outputs"] == [{"sha256": digest, "size": 1024 * 1024}], (
                f"object {i} corrupt or lost"
            )
