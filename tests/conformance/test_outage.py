"""A backend server stopped and started again, seen through the runtime: clear errors, then all back.

Each backend joins with an ``outage_<connector>`` fixture (``Outage`` in
tests/fixtures/connectors.py): a server of the test's own that it can stop
and start on the same port. The runtime's hooks are installed in this
process for a mount served by a real connector process. While the server is
down every file operation fails within seconds with ConnectionError (503:
ECONNREFUSED when the connector could not reach its backend, so nothing was
sent; ECONNABORTED otherwise) or TimeoutError (504, ETIMEDOUT) naming the path, never a
FileNotFoundError and never a hang; ``os.path.exists`` raises instead of
answering False. After the restart the mount works again without restarting
the connector or the handler, and every object written before the outage
reads back byte-exact (on a server that keeps its data), including the one
a write tried to replace during the outage.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import asya_state_runtime
from asya_state_cli.connector_process import ConnectorProcess
from asya_state_connectors.registry import CONNECTORS
from tests.fixtures.connectors import Outage, outage_fixture_name

# Connectors whose backend has no server to stop, and why.
NO_SERVER = {
    "memory": "the memory connector keeps its objects in the connector process itself",
    "fs-buffered-lww": "a local directory has no server to stop (a full disk: tests/runtime/test_disk_full.py)",
    "fs-buffered-cas": "a local directory has no server to stop (a full disk: tests/runtime/test_disk_full.py)",
}
# The transport's read timeout, also the runtime's retry window for a write whose
# outcome is unknown: at least every outage fixture's backend timeout, so an
# outage is the connector's answer (503, or 504 for a backend that hangs).
MOUNT_TIMEOUT = 2
# The errnos each class of outage error may carry.
OUTAGE_ERRNOS = {
    ConnectionError: {errno.ECONNABORTED, errno.ECONNREFUSED},
    TimeoutError: {errno.ETIMEDOUT},
}
RECOVERY_SECONDS = 20.0


@pytest.fixture(params=list(CONNECTORS))
def outage(request: pytest.FixtureRequest) -> Outage:
    name: str = request.param
    if name in NO_SERVER:
        pytest.skip(NO_SERVER[name])
    try:
        rig: Outage = request.getfixturevalue(outage_fixture_name(name))
    except pytest.FixtureLookupError:
        pytest.skip(f"the outage of {name}'s server runs once, for another connector of it")
    return rig


@pytest.fixture
def mount(outage: Outage) -> Iterator[str]:
    """The runtime's hooks on mount /outage, served by a connector of ``outage``'s backend."""
    with (
        tempfile.TemporaryDirectory(prefix="asya-outage-", dir="/tmp") as sockets,
        ConnectorProcess(outage.connector, Path(sockets) / "outage.sock", outage.env),
    ):
        asya_state_runtime.install(f"outage:/outage:timeout={MOUNT_TIMEOUT}", socket_dir=sockets)
        try:
            with asya_state_runtime.revision_scope():
                yield f"/outage/{uuid.uuid4().hex[:10]}"
        finally:
            asya_state_runtime.uninstall()


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def first_success(call: Callable[[], object]) -> None:
    """Retry as a requeued message would, until the connector has reconnected (bounded)."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        try:
            call()
            return
        except (ConnectionError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"no recovery within {RECOVERY_SECONDS:g}s: {exc}") from exc
        time.sleep(0.2)


def test_a_backend_outage_is_a_clear_error_and_loses_nothing(outage: Outage, mount: str) -> None:
    objects = {f"{mount}/{i}.bin": os.urandom(1000 + 37 * i) for i in range(3)}
    objects[f"{mount}/large.bin"] = os.urandom(3 * 1024 * 1024)  # a staged (streamed) write
    for path, data in objects.items():
        write(path, data)
    replaced = f"{mount}/0.bin"

    outage.stop()
    operations: list[tuple[str, Callable[[], object]]] = [
        (replaced, lambda: read(replaced)),
        (replaced, lambda: write(replaced, b"replacement")),
        (replaced, lambda: os.stat(replaced)),
        (replaced, lambda: os.path.exists(replaced)),
        (mount, lambda: os.listdir(mount)),
    ]
    for path, operation in operations:
        with pytest.raises((ConnectionError, TimeoutError)) as caught:
            operation()
        exc = caught.value
        assert exc.errno in OUTAGE_ERRNOS[type(exc)], f"{outage.connector}: {exc!r}"
        assert exc.filename == path, exc

    outage.start()
    first_success(lambda: write(f"{mount}/after.bin", b"after"))
    assert read(f"{mount}/after.bin") == b"after"
    if outage.durable:
        for path, data in objects.items():
            assert read(path) == data, f"{path} changed across the outage"
        assert sorted(os.listdir(mount)) == sorted(
            [*(os.path.basename(p) for p in objects), "after.bin"]
        )
    write(replaced, b"replacement")
    assert read(replaced) == b"replacement"
