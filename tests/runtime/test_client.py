"""The Unix-socket HTTP client: keep-alive pooling, failures, timeouts, threads and fork."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import asya_state_runtime
from asya_state_cli.connector_process import ConnectorProcess
from asya_state_runtime import transport
from tests.runtime.conftest import Connectors


def write(path: str, data: str) -> None:
    with open(path, "w") as f:
        f.write(data)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every new connection the runtime opens, by socket path."""
    opened: list[str] = []
    original = transport.UnixConnection.connect

    def counting(self: transport.UnixConnection) -> None:
        opened.append(self.mount.socket)
        original(self)

    monkeypatch.setattr(transport.UnixConnection, "connect", counting)
    return opened


def test_sequential_operations_reuse_one_connection(
    hooks: Connectors, ns: str, connects: list[str]
) -> None:
    for i in range(20):
        path = f"/state/{ns}/k{i}"
        write(path, str(i))
        assert read(path) == str(i)
        assert os.path.exists(path)
        os.listdir(f"/state/{ns}")
    assert len(connects) == 1


def test_a_partly_read_large_object_does_not_poison_the_pool(
    hooks: Connectors, ns: str, connects: list[str]
) -> None:
    path = f"/state/{ns}/big"
    with open(path, "wb") as f:
        f.write(b"z" * 5_000_000)
    with open(path, "rb") as f:
        assert f.read(3) == b"zzz"
    # The abandoned stream's connection was dropped, not returned half-read.
    for _ in range(5):
        assert read(f"/state/{ns}/big")[:1] == "z"
    with open(f"/state/{ns}/small", "w") as f:
        f.write("ok")
    assert read(f"/state/{ns}/small") == "ok"


@pytest.fixture
def private_socket_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="asya-rtc-", dir="/tmp") as directory:
        yield Path(directory)


def test_a_missing_socket_is_a_connection_error(private_socket_dir: Path) -> None:
    asya_state_runtime.install("gone:/gone", socket_dir=str(private_socket_dir))
    try:
        for action in (
            lambda: read("/gone/a.json"),
            lambda: os.stat("/gone/a.json"),
            lambda: os.path.exists("/gone/a.json"),
            lambda: os.listdir("/gone"),
            lambda: write("/gone/a.json", "x"),
        ):
            with pytest.raises(ConnectionError) as caught:
                action()
            assert not isinstance(caught.value, FileNotFoundError)
            assert str(private_socket_dir / "gone.sock") in str(caught.value)
            assert "'gone'" in str(caught.value)
    finally:
        asya_state_runtime.uninstall()


def test_a_socket_nobody_listens_on_is_a_connection_error(private_socket_dir: Path) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(private_socket_dir / "dead.sock"))
    dead.close()  # the file stays, nobody accepts
    asya_state_runtime.install("dead:/dead", socket_dir=str(private_socket_dir))
    try:
        with pytest.raises(ConnectionError, match="unreachable"), open("/dead/a"):
            pass
    finally:
        asya_state_runtime.uninstall()


def test_a_silent_connector_times_out(private_socket_dir: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(private_socket_dir / "mute.sock"))
    listener.listen(8)
    asya_state_runtime.install("mute:/mute:timeout=0.3", socket_dir=str(private_socket_dir))
    try:
        with pytest.raises(TimeoutError, match=r"did not answer within 0\.3s") as caught:
            os.stat("/mute/a")
        assert caught.value.filename == "/mute/a"
    finally:
        asya_state_runtime.uninstall()
        listener.close()


def test_a_restarted_connector_is_reconnected_transparently(private_socket_dir: Path) -> None:
    socket_path = private_socket_dir / "again.sock"
    asya_state_runtime.install("again:/again", socket_dir=str(private_socket_dir))
    try:
        with ConnectorProcess("memory", socket_path):
            write("/again/a", "one")
            assert read("/again/a") == "one"
        # The pooled connection now leads to a dead process; a new one takes over.
        with ConnectorProcess("memory", socket_path):
            assert not os.path.exists("/again/a")  # memory state died with the old process
            write("/again/a", "two")
            assert read("/again/a") == "two"
        with pytest.raises(ConnectionError), open("/again/a"):
            pass
    finally:
        asya_state_runtime.uninstall()


def test_threads_share_the_pool_safely(hooks: Connectors, ns: str) -> None:
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for round_ in range(15):
                path = f"/state/{ns}/w{index}/r{round_}.txt"
                payload = f"{index}:{round_}:" + "x" * (index * 1000)
                write(path, payload)
                assert read(path) == payload
            assert len(os.listdir(f"/state/{ns}/w{index}")) == 15
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(os.listdir(f"/state/{ns}")) == 8


def test_a_forked_child_never_reuses_the_parents_connections(hooks: Connectors, ns: str) -> None:
    write(f"/state/{ns}/parent", "p")
    assert read(f"/state/{ns}/parent") == "p"
    pool = transport.pool_for(hooks_mount("mem"))
    parent_idle = list(pool._idle)
    assert parent_idle, "the parent should hold an idle keep-alive connection"
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        status = 1
        try:
            fresh = not any(conn in pool._idle for conn in parent_idle)
            for i in range(10):
                write(f"/state/{ns}/child{i}", str(i))
                assert read(f"/state/{ns}/child{i}") == str(i)
            status = 0 if fresh else 2
        finally:
            os.write(write_fd, bytes([status]))
            os._exit(0)
    os.close(write_fd)
    _, exit_status = os.waitpid(pid, 0)
    child_status = os.read(read_fd, 1)
    os.close(read_fd)
    assert exit_status == 0
    assert child_status == b"\x00"
    # The parent's pooled connection still works and was not used by the child.
    assert read(f"/state/{ns}/parent") == "p"
    assert sorted(os.listdir(f"/state/{ns}")) == sorted(
        ["parent", *(f"child{i}" for i in range(10))]
    )


def hooks_mount(name: str) -> Any:
    (mount,) = [m for m in asya_state_runtime.active_mounts() if m.name == name]
    return mount


class OneAnswerPerConnection:
    """A peer that answers one request per connection and drops the connection on the next.

    It reproduces a keep-alive connection going stale between two requests
    (a connector closing idle connections), which no well-behaved connector
    does on demand.
    """

    def __init__(self, path: Path) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(8)
        self.connections = 0
        self.requests: list[str] = []
        self.request_ids: list[tuple[str, str | None]] = []  # every request, answered or not
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as stream:
            for answered in range(2):
                request_line = stream.readline().decode()
                request_id = None
                while (line := stream.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "asya-request-id":
                        request_id = value.strip()
                if request_line:
                    self.request_ids.append((request_line.split(" ")[0], request_id))
                if not request_line or answered:
                    return  # the stale connection: read the request, answer nothing
                self.requests.append(request_line.split(" ")[0])
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nX-Asya-Kind: file\r\nX-Asya-Size: 1\r\n"
                    b'ETag: "e1"\r\nContent-Length: 0\r\n\r\n'
                )

    def close(self) -> None:
        self.listener.close()


def test_lost_requests_are_sent_again_writes_with_the_same_request_id(
    private_socket_dir: Path,
) -> None:
    peer = OneAnswerPerConnection(private_socket_dir / "flaky.sock")
    asya_state_runtime.install("flaky:/flaky", socket_dir=str(private_socket_dir))
    try:
        assert os.stat("/flaky/k").st_size == 1
        assert os.stat("/flaky/k").st_size == 1  # stale connection, retried on a new one
        assert peer.connections == 2
        write("/flaky/other", "x")  # lost on the stale connection, sent again
        assert peer.requests == ["HEAD", "HEAD", "PUT"]
        puts = [request_id for method, request_id in peer.request_ids if method == "PUT"]
        assert len(puts) == 2
        assert puts[0] is not None
        assert puts[0] == puts[1]  # the connector can tell it is one write
        write("/flaky/third", "y")  # the next write is another operation: another id
        assert peer.request_ids[-1][1] not in (None, puts[0])
    finally:
        asya_state_runtime.uninstall()
        peer.close()


def test_a_fork_while_another_thread_fetches_capabilities_leaves_the_child_working(
    hooks: Connectors, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child of a fork taken mid-fetch of /v1/info fetches again instead of waiting forever."""
    from asya_state_runtime import mount_client

    parent = os.getpid()
    fetching, release = threading.Event(), threading.Event()
    original = mount_client.MountClient._request

    def slow_info(self: Any, method: str, target: str, *args: Any, **kwargs: Any) -> Any:
        if target == mount_client.INFO and os.getpid() == parent:
            fetching.set()
            release.wait(30)  # the capability lock is held meanwhile
        return original(self, method, target, *args, **kwargs)

    monkeypatch.setattr(mount_client.MountClient, "_request", slow_info)
    write(f"/cas/{ns}/a", "1")

    def read_then_write() -> None:
        read(f"/cas/{ns}/a")  # remembered: the write needs the capabilities (cas or not)
        write(f"/cas/{ns}/a", "2")

    writer = threading.Thread(target=read_then_write)
    writer.start()
    assert fetching.wait(10), "the writer thread never started fetching the capabilities"
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: a hang here would otherwise be forever
        signal.alarm(20)
        status = 1
        try:
            write(f"/cas/{ns}/child", "c")
            assert read(f"/cas/{ns}/child") == "c"
            write(f"/cas/{ns}/child", "d")  # conditional on the revision just read
            status = 0
        finally:
            os.write(write_fd, bytes([status]))
            os._exit(0)
    os.close(write_fd)
    child_status = os.read(read_fd, 1)
    _, exit_status = os.waitpid(pid, 0)
    os.close(read_fd)
    release.set()
    writer.join(10)
    assert (exit_status, child_status) == (0, b"\x00"), "the child wrote through the CAS mount"
    assert read(f"/cas/{ns}/child") == "d"
    assert read(f"/cas/{ns}/a") == "2", "the parent's own fetch finished too"


def test_no_retry_is_sent_after_the_connectors_would_have_forgotten_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A retry goes out only while every connector still holds the record of its request."""
    from asya_state_connectors import idempotency
    from asya_state_runtime import mount_client as connector
    from asya_state_runtime.config import Mount

    assert connector.RETRY_HORIZON == idempotency.RETRY_LIMIT_SECONDS
    assert connector.RETRY_HORIZON < idempotency.RECORD_SECONDS
    clock = [1000.0]
    monkeypatch.setattr(connector.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(connector.time, "sleep", lambda seconds: None)
    client = connector.MountClient(Mount("slow", "/slow", "/nonexistent.sock", timeout=300.0))
    sent: list[float] = []

    def hangs(seconds: float) -> Callable[[], None]:
        def attempt() -> None:
            sent.append(clock[0] - 1000.0)
            clock[0] += seconds
            raise TimeoutError("no answer")

        return attempt

    with pytest.raises(TimeoutError):
        client._once(hangs(60.0))
    assert sent == [0.0, 60.0]  # one retry after a first attempt that hung for 60 s
    sent.clear()
    clock[0] = 1000.0
    with pytest.raises(TimeoutError):
        client._once(hangs(150.0))
    assert sent == [0.0]  # a retry 150 s later could meet a forgotten record: none is sent


def test_a_request_that_may_have_been_applied_is_retried_until_the_connector_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refused from the start: given up after RETRY_WINDOW. Connection lost: retried for the timeout."""
    import errno

    from asya_state_runtime import mount_client as connector
    from asya_state_runtime.config import Mount

    clock = [0.0]
    monkeypatch.setattr(connector.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(
        connector.time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds)
    )
    client = connector.MountClient(Mount("m", "/m", "/nonexistent.sock", timeout=60.0))
    refused = ConnectionError(errno.ECONNREFUSED, "refused")

    def refused_always() -> None:
        raise refused

    with pytest.raises(ConnectionError):
        client._once(refused_always)
    assert clock[0] <= connector.RETRY_WINDOW + 1.0  # nothing was sent: no outcome to wait for

    clock[0] = 0.0
    answers: list[BaseException | None] = [ConnectionError(errno.ECONNRESET, "lost")]
    answers += [refused] * 25  # a connector restart taking about 20 s

    def lost_then_back() -> str:
        if answers:
            failure = answers.pop(0)
            assert failure is not None
            raise failure
        return "applied"

    assert client._once(lost_then_back) == "applied"
    assert clock[0] > connector.RETRY_WINDOW


def test_a_write_sent_before_a_backend_outage_is_retried_through_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """503 unavailable (sent, maybe applied) then unreachable: retried for the timeout.

    Only "unreachable" answers prove nothing was applied: those alone give up
    after RETRY_WINDOW, so a runner's requeue cannot apply a message twice.
    """
    import errno

    from asya_state_runtime import errors
    from asya_state_runtime import mount_client as connector
    from asya_state_runtime.config import Mount

    clock = [0.0]
    monkeypatch.setattr(connector.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(
        connector.time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds)
    )
    mount = Mount("m", "/m", "/nonexistent.sock", timeout=60.0)
    client = connector.MountClient(mount)

    def answer(code: str) -> OSError:
        body = f'{{"code": "{code}", "message": "Redis is unreachable"}}'.encode()
        return errors.from_status(503, body, "/m/k", mount)

    unreachable = answer("unreachable")
    assert isinstance(unreachable, ConnectionError)
    assert unreachable.errno == errno.ECONNREFUSED
    assert answer("unavailable").errno == errno.ECONNABORTED

    def unreachable_always() -> None:
        raise unreachable

    with pytest.raises(ConnectionError) as refused:
        client._once(unreachable_always)
    assert clock[0] <= connector.RETRY_WINDOW + 1.0  # never reached: the outcome is known
    assert not errors.outcome_unknown(refused.value)  # so a runner may run it again

    answers: list[BaseException] = []

    def outage_then_back() -> str:
        if answers:
            raise answers.pop(0)
        return "applied"

    for first in (answer("unavailable"), TimeoutError(errno.ETIMEDOUT, "no answer")):
        clock[0] = 0.0
        answers[:] = [first] + [unreachable] * 25  # a 20 s outage
        assert client._once(outage_then_back) == "applied"
        assert clock[0] > connector.RETRY_WINDOW

    clock[0] = 0.0
    answers[:] = [answer("unavailable")] + [unreachable] * 200  # longer than the mount's timeout
    with pytest.raises(ConnectionError) as raised:
        client._once(outage_then_back)
    assert connector.RETRY_WINDOW < clock[0] <= mount.timeout + 1.0
    # The last retry was refused, but the first may have been applied: not ECONNREFUSED.
    assert raised.value.errno == errno.ECONNABORTED
    assert raised.value.filename == "/m/k"
    assert "may have been applied" in str(raised.value)
    assert errors.outcome_unknown(raised.value)  # a runner must not simply run it again
