"""HTTP/1.1 over a connector's Unix socket: pooled keep-alive connections and streamed bodies.

Owns: one connection pool per socket per process (thread-safe; emptied in a
forked child so a child never reuses its parent's sockets), connect and read
timeouts, writing requests (the head and a small body in one send), one
retry of an idempotent request that met a stale pooled connection, streamed
uploads (Content-Length or chunked) that can be aborted so the connector
discards them, and replies that are read incrementally and hand their
connection back to the pool once fully consumed. Responses are parsed by
``response_parser``. Also the one table of what a transport failure means
to the handler (``_FAILURES``), and telling a peer that speaks another
protocol (no HTTP/1.x status line, or an error answer without the
protocol's ``X-Asya-Error-Code``, as an upstream connector image sends)
from a connector that broke: ConnectionError with EPROTO naming the mount,
the socket and what it answered, instead of a parse error or a
FileNotFoundError.

This is the one client of the connector protocol: the runtime, the
``asya-state probe`` command and the Python-side tooling (``HttpConnector``
of asya_state_connectors.client) all send their requests through it.

Must not: know the protocol's paths or decide what a status means for the
caller; it only turns transport failures into ConnectionError/TimeoutError.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
from collections.abc import Callable, Mapping

from . import errors, response_parser
from .config import Mount

# How many idle connections a pool keeps; more concurrent requests open more.
MAX_IDLE = 16
# An abandoned reply with at most this much left is drained so its connection
# can be reused; a longer one is cheaper to drop.
DRAIN_LIMIT = 64 * 1024

_IDEMPOTENT = frozenset({"GET", "HEAD"})
# Bodies and chunks up to this size share one send with their framing or the
# request head: copying them costs less than another system call.
_SMALL_CHUNK = 16 * 1024
# What a socket operation that ran out of time raises: TimeoutError with a
# Python-level timeout, EAGAIN (BlockingIOError) with a kernel one.
_TIMEOUTS = (TimeoutError, BlockingIOError)
_IDLE_EVENTS = select.POLLIN | select.POLLERR | select.POLLHUP

_Make = Callable[[Mount, str, BaseException], OSError]
_Kinds = type[BaseException] | tuple[type[BaseException], ...]


def _foreign_line(mount: Mount, path: str, exc: BaseException) -> OSError:
    return errors.foreign(mount, path, f"it answered {exc}")


# What a transport failure means to the handler: the one table, first match
# wins. While connecting, an error says the connector is not there; once
# connected, that the exchange broke (retried by the mount client when the
# outcome is unknown) or that the peer is not an asya-state connector at all
# (a status line that is not HTTP/1.x; not retried).
_FAILURES: dict[bool, tuple[tuple[_Kinds, _Make], ...]] = {
    True: (  # connecting
        (_TIMEOUTS, lambda mount, path, _: errors.timed_out(mount, path, mount.connect_timeout)),
        (OSError, errors.unreachable),
    ),
    False: (  # on a connection
        (_TIMEOUTS, lambda mount, path, _: errors.timed_out(mount, path, mount.timeout)),
        (response_parser.RemoteDisconnected, errors.lost),
        (response_parser.BadStatusLine, _foreign_line),
        ((OSError, response_parser.WireError), errors.lost),
    ),
}
# Every exception the table maps; anything else (a bug, KeyboardInterrupt) passes through.
_TRANSPORT_ERRORS = (OSError, response_parser.WireError)


def failure(mount: Mount, path: str, exc: BaseException, *, connecting: bool = False) -> OSError:
    """The handler-facing exception for a transport failure (see ``_FAILURES``)."""
    for kinds, make in _FAILURES[connecting]:
        if isinstance(exc, kinds):
            return make(mount, path, exc)
    raise TypeError(f"not a transport failure: {exc!r}")


def _set_io_timeout(sock: socket.socket, seconds: float) -> None:
    """Bound every send and recv on ``sock`` by ``seconds``, preferably in the kernel.

    A socket with a Python timeout is non-blocking and polls before every
    send and recv: a second system call per operation, as costly as the
    operation itself for a small request. A blocking socket with
    SO_RCVTIMEO/SO_SNDTIMEO waits in the call, and one that runs out fails
    with EAGAIN, which is handled like TimeoutError.
    """
    whole = int(seconds)
    micros = int((seconds - whole) * 1_000_000)
    if not whole and not micros:
        micros = 1  # a zero timeval would mean no timeout at all
    try:
        value = struct.pack("ll", whole, micros)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
    except (OSError, struct.error):  # another struct timeval, or no room: Python's timeout
        sock.settimeout(seconds)
        return
    sock.settimeout(None)


class UnixConnection:
    """One connection to a connector: its socket, receive buffer and idle check, for life."""

    __slots__ = ("_poller", "mount", "pid", "reader", "sock")

    def __init__(self, mount: Mount) -> None:
        self.mount = mount
        self.sock: socket.socket | None = None
        self.reader: response_parser.Reader | None = None
        self.pid = 0
        self._poller: select.poll | None = None

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.mount.connect_timeout)
            sock.connect(self.mount.socket)
            _set_io_timeout(sock, self.mount.timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.reader = response_parser.Reader(sock)
        self.pid = os.getpid()

    def send(self, data: bytes | memoryview) -> None:
        if self.sock is None:
            raise ConnectionError("the connection is closed")
        self.sock.sendall(data)

    def response(self, method: str) -> response_parser.Response:
        """The head of the reply to the request just sent (``method`` decides if it has a body)."""
        if self.reader is None or self.sock is None:
            raise ConnectionError("the connection is closed")
        return response_parser.read_response(self.reader, method)

    def idle_and_clean(self) -> bool:
        """Whether this idle connection may carry a request.

        Anything the connector sent on an idle connection (bytes left over
        after a reply, end of stream, an error) means it closed it or lost
        track of it; either way it must not carry a request.
        """
        if self.sock is None or self.reader is None or self.reader.pending:
            return False
        if self._poller is None:  # made once, on first reuse (keepalive=false never needs one)
            self._poller = select.poll()
            self._poller.register(self.sock, _IDLE_EVENTS)
        return not self._poller.poll(0)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


class Pool:
    """Idle keep-alive connections to one connector socket."""

    def __init__(self, mount: Mount) -> None:
        self.mount = mount
        self._lock = threading.Lock()
        self._idle: list[UnixConnection] = []
        self._pid = os.getpid()

    def acquire(self, path: str) -> tuple[UnixConnection, bool]:
        """A connected connection and whether it was reused from the pool."""
        while True:
            with self._lock:
                self._check_pid()
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            if conn.idle_and_clean():
                return conn, True
            conn.close()
        conn = UnixConnection(self.mount)
        try:
            conn.connect()
        except OSError as exc:
            raise failure(self.mount, path, exc, connecting=True) from None
        return conn, False

    def release(self, conn: UnixConnection) -> None:
        with self._lock:
            # The connection's own pid, not a getpid() per request: acquire()
            # checks this process's pid, and a connection opened before a fork
            # (pool reset by the hook) no longer matches the pool's.
            if (
                conn.pid == self._pid
                and self.mount.keepalive
                and conn.sock is not None
                and conn.reader is not None
                and not conn.reader.pending
                and len(self._idle) < MAX_IDLE
            ):
                self._idle.append(conn)
                return
        conn.close()

    def reset_after_fork(self) -> None:
        # The parent's sockets stay open in the parent; the child only forgets them.
        self._lock = threading.Lock()
        self._idle = []
        self._pid = os.getpid()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _check_pid(self) -> None:
        # Belt and braces next to the at-fork hook: a process created by a
        # fork that bypassed os.fork's hooks must not share sockets either.
        if self._pid != os.getpid():
            self._idle = []
            self._pid = os.getpid()


_pools: dict[str, Pool] = {}
_pools_lock = threading.Lock()


def pool_for(mount: Mount) -> Pool:
    with _pools_lock:
        pool = _pools.get(mount.socket)
        if pool is None or pool.mount != mount:
            pool = _pools[mount.socket] = Pool(mount)
        return pool


def close_pools() -> None:
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


def _after_fork_in_child() -> None:
    global _pools_lock
    _pools_lock = threading.Lock()
    for pool in _pools.values():
        pool.reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Reply:
    """A response whose body is read on demand; its connection returns to the pool when done."""

    __slots__ = ("_conn", "_pool", "_response", "body", "path", "status")

    def __init__(
        self, pool: Pool, conn: UnixConnection, response: response_parser.Response, path: str
    ) -> None:
        self._pool = pool
        self._conn: UnixConnection | None = conn
        self._response = response
        self.path = path
        self.status = response.status
        self.body: bytes | None = None  # an error answer's body, once error() read it

    def header(self, name: str) -> str | None:
        return self._response.header(name)

    @property
    def remaining(self) -> int | None:
        """Body bytes still to read, if the length is known."""
        return self._response.length

    def error(self) -> OSError:
        """The handler-facing exception for this (error) reply; consumes the body."""
        self.body = self.read_all()
        return errors.from_status(
            self.status,
            self.body,
            self.path,
            self._pool.mount,
            self.header(errors.ERROR_CODE_HEADER),
            self.header(errors.ERROR_MESSAGE_HEADER),
        )

    def readinto(self, buffer: memoryview) -> int:
        try:
            count = self._response.readinto(buffer)
        except _TRANSPORT_ERRORS as exc:
            self.close_connection()
            raise failure(self._pool.mount, self.path, exc) from None
        if self._response.done:
            self._finish_body()
        return count

    def read_all(self) -> bytes:
        try:
            data = self._response.read()
        except _TRANSPORT_ERRORS as exc:
            self.close_connection()
            raise failure(self._pool.mount, self.path, exc) from None
        self._finish_body()
        return data

    def discard(self) -> None:
        """Give up on the rest of the body, keeping the connection when that is cheap."""
        if self._conn is None:
            return
        left = self.remaining
        if self._response.done or (left is not None and left <= DRAIN_LIMIT):
            with contextlib.suppress(OSError):
                self.read_all()
            return
        self.close_connection()

    def close_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._response.close()
        if conn is not None:
            conn.close()

    def _finish_body(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._response.will_close:
            conn.close()
        else:
            self._pool.release(conn)


def _reply(
    pool: Pool,
    conn: UnixConnection,
    response: response_parser.Response,
    path: str,
    method: str,
    target: str,
) -> Reply:
    """The reply to a request, unless the peer showed it is no asya-state connector.

    Every error answer of the protocol carries its stable code in
    ``X-Asya-Error-Code``; one without it (an upstream connector's 404 page,
    a generic web server) must not become a FileNotFoundError the handler
    would take for missing state.
    """
    if response.status < 400 or response.header(errors.ERROR_CODE_HEADER) is not None:
        return Reply(pool, conn, response, path)
    server = response.header("Server")
    kind = response.header("Content-Type") or "a body"
    sample = conn.reader.peek(120) if conn.reader is not None else b""
    conn.close()
    found = (
        f"it answered {method} {target[:120]} with HTTP/1.{response.version % 10} "
        f"{response.status} and no {errors.ERROR_CODE_HEADER}"
        + (f" (Server: {server[:80]})" if server else "")
        + (f", {kind[:60]} {sample!r}" if sample else "")
    )
    raise errors.foreign(pool.mount, path, found)


def _request_head(
    mount: Mount, method: str, target: str, headers: Mapping[str, str] | None, framing: str
) -> bytes:
    """The request head as one bytes object; ``framing`` is the body's framing header line."""
    line = f"{method} {target}"
    # What http.client refuses as well: a request line that could split or smuggle.
    if not (line.isascii() and line.isprintable()) or line.count(" ") != 1:
        raise ValueError(f"refusing to send the request line {line[:200]!r}")
    parts = [line, " HTTP/1.1\r\nHost: localhost\r\n"]
    if headers:
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"refusing to send the header {name[:100]!r}: {value[:100]!r}")
            parts.append(f"{name}: {value}\r\n")
    parts.append(framing)
    if not mount.keepalive:
        parts.append("Connection: close\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("iso-8859-1")


def request(
    pool: Pool,
    method: str,
    target: str,
    *,
    path: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> Reply:
    """Send one request with an in-memory body and return the reply (status unchecked)."""
    framing = ""
    if body is not None or method in ("PUT", "POST"):
        framing = f"Content-Length: {len(body or b'')}\r\n"
    head = _request_head(pool.mount, method, target, headers, framing)
    if body and len(body) <= _SMALL_CHUNK:
        head, body = head + body, None
    retry = method in _IDEMPOTENT
    while True:
        conn, reused = pool.acquire(path)
        try:
            conn.send(head)
            if body:
                conn.send(body)
            response = conn.response(method)
        except _TRANSPORT_ERRORS as exc:
            conn.close()
            stale = isinstance(exc, ConnectionError | response_parser.BadStatusLine)
            if reused and retry and stale:
                retry = False
                continue
            raise failure(pool.mount, path, exc) from None
        return _reply(pool, conn, response, path, method, target)


class Upload:
    """A request whose body is sent piece by piece; ``abort`` makes the connector discard it.

    With a Content-Length the head waits for the first piece of body and
    goes out in the same send (a small write is one system call); a chunked
    upload is a stream that may idle, so its head is sent at once.
    """

    __slots__ = ("_chunked", "_conn", "_head", "_method", "_path", "_pool", "_target", "early")

    def __init__(
        self,
        pool: Pool,
        conn: UnixConnection,
        path: str,
        *,
        method: str,
        target: str,
        chunked: bool,
        head: bytes | None = None,
    ) -> None:
        self._pool = pool
        self._conn: UnixConnection | None = conn
        self._path = path
        self._method = method
        self._target = target
        self._chunked = chunked
        self._head = head  # not sent yet
        # The connector's answer when it refused before the body ended (its error was raised).
        self.early: Reply | None = None

    def send(self, data: bytes | memoryview) -> None:
        if not data:
            return
        if not self._chunked:
            self._send(data)
        elif len(data) <= _SMALL_CHUNK:
            self._send(b"%x\r\n%b\r\n" % (len(data), bytes(data)))
        else:
            self._send(b"%x\r\n" % len(data))
            self._send(data)
            self._send(b"\r\n")

    def finish(self) -> Reply:
        """End the body and wait for the connector's answer."""
        conn = self._live()
        if self._chunked:
            self._send(b"0\r\n\r\n")
        elif self._head is not None:
            self._send(b"")  # an empty body: only the head goes out
        self._conn = None
        try:
            response = conn.response(self._method)
        except _TRANSPORT_ERRORS as exc:
            conn.close()
            raise failure(self._pool.mount, self._path, exc) from None
        return _reply(self._pool, conn, response, self._path, self._method, self._target)

    def abort(self) -> None:
        """Drop the connection mid-body; the connector stores nothing."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _live(self) -> UnixConnection:
        if self._conn is None:
            raise ValueError("the upload is already finished or aborted")
        return self._conn

    def _send(self, data: bytes | memoryview) -> None:
        conn = self._live()
        head, self._head = self._head, None
        try:
            if head is None:
                conn.send(data)
            elif len(data) <= _SMALL_CHUNK:
                conn.send(head + data)
            else:
                conn.send(head)
                conn.send(data)
        except OSError as exc:
            # The connector may have answered early (a refused condition, a
            # bad key) and closed; its answer explains more than the broken pipe.
            early = None if isinstance(exc, _TIMEOUTS) else self._early_reply(conn)
            self.abort()
            if early is not None:
                raise early from None
            raise failure(self._pool.mount, self._path, exc) from None

    def _early_reply(self, conn: UnixConnection) -> OSError | None:
        try:
            response = conn.response(self._method)
        except _TRANSPORT_ERRORS:
            return None
        if response.status < 400:
            return None
        try:
            self.early = _reply(self._pool, conn, response, self._path, self._method, self._target)
        except ConnectionError as foreign:
            return foreign
        return self.early.error()


def start_upload(
    pool: Pool,
    method: str,
    target: str,
    *,
    path: str,
    headers: Mapping[str, str],
    size: int | None,
) -> Upload:
    """Open the request; the body follows through the returned Upload.

    With ``size`` the body has a Content-Length, otherwise it is chunked.
    """
    framing = "Transfer-Encoding: chunked\r\n" if size is None else f"Content-Length: {size}\r\n"
    head = _request_head(pool.mount, method, target, headers, framing)
    conn, _ = pool.acquire(path)
    if size is not None:
        return Upload(pool, conn, path, method=method, target=target, chunked=False, head=head)
    try:
        conn.send(head)
    except OSError as exc:
        conn.close()
        raise failure(pool.mount, path, exc) from None
    return Upload(pool, conn, path, method=method, target=target, chunked=True)
