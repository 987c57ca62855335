"""A backend that dies right after applying a write, for longer than RETRY_WINDOW: applied once.

A fault proxy between the Redis connector and Redis relays every byte until
the connector sends the append carrying the test's marker; then it drops
Redis's reply (Redis has applied the append), closes the connection and stops
listening for ``OUTAGE`` seconds, so the connector's retries are refused
("503 unreachable") the way they are while a Redis restarts. The runtime
must keep retrying (the first attempt's outcome is unknown) until Redis is
back, where the retry's request id finds the record of the applied append:
the handler sees success and the marker is in the file once. With a mount
timeout shorter than the outage (2 s against 4 s) the handler gets a clear error instead, and
the append is still applied exactly once (the outcome a requeue must not
repeat, README "Retries of a write whose reply was lost").
"""

from __future__ import annotations

import contextlib
import errno
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import asya_state_runtime
from asya_state_cli.connector_process import ConnectorProcess
from asya_state_cli.servers.redis import RedisServer

# Longer than the runtime's RETRY_WINDOW (5 s): the case a give-up then requeue used to double.
OUTAGE = 7.0


class ReplyDropper:
    """A TCP proxy on 127.0.0.1 that loses the reply to the request carrying ``marker``, then goes down.

    Down means not listening: a connection attempt is refused, so the request
    it would carry certainly never reaches Redis.
    """

    def __init__(self, upstream: int, marker: bytes, outage: float) -> None:
        self.upstream = upstream
        self.marker = marker
        self.outage = outage
        self.tripped = threading.Event()
        self.refused_while_down = 0
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._stop = threading.Event()
        self._open: list[socket.socket] = []
        self._listener = self._listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _listen(self) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.1)
        return listener

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self._open += [client, server]
            armed = threading.Event()
            threading.Thread(target=self._up, args=(client, server, armed), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, armed), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, armed: threading.Event) -> None:
        with server:
            while chunk := _recv(client):
                if not self.tripped.is_set() and self.marker in chunk:
                    armed.set()
                server.sendall(chunk)

    def _down(self, server: socket.socket, client: socket.socket, armed: threading.Event) -> None:
        with client:
            while chunk := _recv(server):
                if armed.is_set() and not self.tripped.is_set():
                    # Redis applied the append and answered: lose the answer, then go down.
                    self.tripped.set()
                    self._go_down()
                    return
                client.sendall(chunk)

    def _go_down(self) -> None:
        self._listener.close()
        for sock in self._open:  # every connection the connector holds breaks too
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._open.clear()
        time.sleep(self.outage)
        self._listener = self._listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


@pytest.fixture
def redis_behind_dropper() -> Iterator[tuple[RedisServer, str]]:
    with RedisServer() as server:
        yield server, f"drop-{uuid.uuid4().hex[:8]}/"


def _append_through_outage(
    server: RedisServer, prefix: str, mount_timeout: float, outage: float
) -> tuple[BaseException | None, bytes, ReplyDropper]:
    marker = f"marker-{uuid.uuid4().hex}".encode()
    dropper = ReplyDropper(server.port, marker, outage)
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{dropper.port}/0",
        "STATE_PREFIX": prefix,
        "REDIS_TIMEOUT_SECONDS": "1",
    }
    failure: BaseException | None = None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="asya-drop-", dir="/tmp") as sockets,
            ConnectorProcess("redis-buffered-cas", Path(sockets) / "drop.sock", env),
        ):
            asya_state_runtime.install(f"drop:/drop:timeout={mount_timeout:g}", socket_dir=sockets)
            try:
                path = "/drop/log"
                with open(path, "ab") as f:  # warms up: scripts loaded, connections open
                    f.write(b"start;")
                try:
                    with open(path, "ab") as f:
                        f.write(marker + b";")
                except (ConnectionError, TimeoutError) as exc:
                    failure = exc
                assert dropper.tripped.is_set(), "the proxy never saw the marked append"
                deadline = time.monotonic() + outage + 20
                while True:  # read back once Redis is reachable again (bounded)
                    try:
                        with open(path, "rb") as f:
                            stored = f.read()
                        break
                    except (ConnectionError, TimeoutError):
                        assert time.monotonic() < deadline, "the mount never came back"
                        time.sleep(0.2)
            finally:
                asya_state_runtime.uninstall()
    finally:
        dropper.close()
    return failure, stored.replace(marker, b"MARK"), dropper


@pytest.mark.slow
def test_a_write_applied_before_a_long_backend_outage_succeeds_once(
    redis_behind_dropper: tuple[RedisServer, str],
) -> None:
    """The reply lost, Redis unreachable for 7 s: the append succeeds, applied exactly once."""
    failure, stored, _ = _append_through_outage(
        *redis_behind_dropper, mount_timeout=30, outage=OUTAGE
    )
    assert failure is None, f"the handler saw {failure!r}"
    assert stored == b"start;MARK;"


@pytest.mark.slow
def test_an_outage_longer_than_the_mount_timeout_is_a_clear_error_and_the_write_stays_once(
    redis_behind_dropper: tuple[RedisServer, str],
) -> None:
    """Mount timeout 2 s < a 4 s outage: an error saying the write may have been applied."""
    failure, stored, _ = _append_through_outage(*redis_behind_dropper, mount_timeout=2, outage=4)
    # The first attempt's failure (a 503 "unavailable" or a 504: sent, no answer),
    # not the last retry's ECONNREFUSED, which would read as "not applied".
    assert isinstance(failure, ConnectionError | TimeoutError), repr(failure)
    assert failure.errno in (errno.ECONNABORTED, errno.ETIMEDOUT), repr(failure)
    assert "an earlier attempt may have been applied" in str(failure)
    assert asya_state_runtime.outcome_unknown(failure)
    assert failure.filename == "/drop/log"
    assert stored == b"start;MARK;"  # applied before the outage, once
