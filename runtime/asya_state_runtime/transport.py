"""HTTP/1.1 over a connector's Unix socket: pooled keep-alive connections and streamed bodies.

Owns: one connection pool per socket per process (thread-safe; emptied in a
forked child so a child never reuses its parent's sockets), connect and read
timeouts, one retry of an idempotent request that met a stale pooled
connection, streamed uploads (Content-Length or chunked) that can be aborted
so the connector discards them, and replies that are read incrementally and
hand their connection back to the pool once fully consumed.

Must not: know the protocol's paths or decide what a status means for the
caller; it only turns transport failures into ConnectionError/TimeoutError.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import select
import socket
import threading
from collections.abc import Mapping

from . import errors
from .config import Mount

# How many idle connections a pool keeps; more concurrent requests open more.
MAX_IDLE = 16
# An abandoned reply with at most this much left is drained so its connection
# can be reused; a longer one is cheaper to drop.
DRAIN_LIMIT = 64 * 1024

_IDEMPOTENT = frozenset({"GET", "HEAD"})
# Chunks up to this size are framed in one send instead of three.
_SMALL_CHUNK = 16 * 1024


# Limits on a response head, as http.client applies them.
_MAX_LINE = 65536
_MAX_HEADERS = 100


class _Head:
    """Response headers as a dict of lower-cased names: the part of a message http.client uses."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self._fields = fields

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._fields.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        return self._fields.get(name.lower(), default)

    def items(self) -> list[tuple[str, str]]:
        return [(name, value) for name, values in self._fields.items() for value in values]


def _read_head(fp: io.BufferedReader) -> _Head:
    fields: dict[str, list[str]] = {}
    for _ in range(_MAX_HEADERS + 1):
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return _Head(fields)
        name, sep, value = line.decode("iso-8859-1").partition(":")
        if not sep:
            raise http.client.HTTPException(f"malformed header line {line[:100]!r}")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")


class _Response(http.client.HTTPResponse):
    """An HTTPResponse whose head is parsed into a plain dict.

    http.client parses every response head with the email package; the
    profile of a 1 KiB read showed that as the largest cost in the client
    (about 20 us of CPU per request). Connector heads are short, ASCII and
    never folded, so splitting lines is exact for them; the body is still
    read by http.client (Content-Length, chunked or until close).
    """

    def begin(self) -> None:
        if self.headers is not None:
            return
        version, status, reason = self._read_status()
        while status == http.client.CONTINUE:
            _read_head(self.fp)
            version, status, reason = self._read_status()
        if not version.startswith("HTTP/1."):
            raise http.client.UnknownProtocol(version)
        self.version = 10 if version == "HTTP/1.0" else 11
        self.code = self.status = status
        self.reason = reason.strip()
        head = _read_head(self.fp)
        self.headers = self.msg = head
        self.chunked = (head.get("transfer-encoding") or "").lower() == "chunked"
        self.chunk_left = None
        connection = (head.get("connection") or "").lower()
        self.will_close = (
            "close" in connection if self.version == 11 else "keep-alive" not in connection
        )
        length = head.get("content-length")
        self.length = None
        if length is not None and not self.chunked:
            if not length.isdigit():
                raise http.client.HTTPException(f"bad Content-Length {length!r}")
            self.length = int(length)
        if status in (204, 304) or status < 200 or self._method == "HEAD":
            self.length = 0
        if self.length is None and not self.chunked:
            self.will_close = True


class UnixConnection(http.client.HTTPConnection):
    """An HTTPConnection to a Unix socket with separate connect and read timeouts."""

    response_class = _Response

    def __init__(self, mount: Mount) -> None:
        super().__init__("localhost", timeout=mount.timeout)
        self.mount = mount

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.mount.connect_timeout)
            sock.connect(self.mount.socket)
            sock.settimeout(self.mount.timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _alive(conn: UnixConnection) -> bool:
    """An idle keep-alive connection is usable while the server has sent nothing on it.

    Readability of an idle connection means the connector closed it (or sent
    garbage); either way it must not carry a request.
    """
    sock = conn.sock
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)


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
            if _alive(conn):
                return conn, True
            conn.close()
        conn = UnixConnection(self.mount)
        try:
            conn.connect()
        except TimeoutError:
            raise errors.timed_out(self.mount, path, self.mount.connect_timeout) from None
        except OSError as exc:
            raise errors.unreachable(self.mount, path, exc) from None
        return conn, False

    def release(self, conn: UnixConnection) -> None:
        with self._lock:
            self._check_pid()
            if conn.sock is not None and self.mount.keepalive and len(self._idle) < MAX_IDLE:
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

    def __init__(
        self, pool: Pool, conn: UnixConnection, response: http.client.HTTPResponse, path: str
    ) -> None:
        self._pool = pool
        self._conn: UnixConnection | None = conn
        self._response = response
        self.path = path
        self.status = response.status

    def header(self, name: str) -> str | None:
        return self._response.getheader(name)

    @property
    def remaining(self) -> int | None:
        """Body bytes still to read, if the length is known."""
        return self._response.length

    def error(self) -> OSError:
        """The handler-facing exception for this (error) reply; consumes the body."""
        return errors.from_status(self.status, self.read_all(), self.path, self._pool.mount)

    def readinto(self, buffer: memoryview) -> int:
        try:
            count = self._response.readinto(buffer)
        except TimeoutError:
            self.close_connection()
            raise errors.timed_out(self._pool.mount, self.path, self._pool.mount.timeout) from None
        except (OSError, http.client.HTTPException) as exc:
            self.close_connection()
            raise errors.lost(self._pool.mount, self.path, exc) from None
        if self._response.isclosed():
            self._finish_body()
        return count

    def read_all(self) -> bytes:
        try:
            data = self._response.read()
        except TimeoutError:
            self.close_connection()
            raise errors.timed_out(self._pool.mount, self.path, self._pool.mount.timeout) from None
        except (OSError, http.client.HTTPException) as exc:
            self.close_connection()
            raise errors.lost(self._pool.mount, self.path, exc) from None
        self._finish_body()
        return data

    def discard(self) -> None:
        """Give up on the rest of the body, keeping the connection when that is cheap."""
        if self._conn is None:
            return
        left = self.remaining
        if self._response.isclosed() or (left is not None and left <= DRAIN_LIMIT):
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
        if self._response.isclosed() and not self._response.will_close:
            self._pool.release(conn)
        else:
            self._response.close()
            conn.close()


def _send_headers(
    conn: UnixConnection, method: str, target: str, headers: Mapping[str, str]
) -> None:
    conn.putrequest(method, target, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()


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
    all_headers = dict(headers or {})
    if body is not None or method in ("PUT", "POST"):
        all_headers["Content-Length"] = str(len(body or b""))
    retry = method in _IDEMPOTENT
    while True:
        conn, reused = pool.acquire(path)
        try:
            _send_headers(conn, method, target, all_headers)
            if body:
                conn.send(body)
            response = conn.getresponse()
        except TimeoutError:
            conn.close()
            raise errors.timed_out(pool.mount, path, pool.mount.timeout) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            stale = isinstance(exc, ConnectionError | http.client.BadStatusLine)
            if reused and retry and stale:
                retry = False
                continue
            raise errors.lost(pool.mount, path, exc) from None
        return Reply(pool, conn, response, path)


class Upload:
    """A request whose body is sent piece by piece; ``abort`` makes the connector discard it."""

    def __init__(self, pool: Pool, conn: UnixConnection, path: str, *, chunked: bool) -> None:
        self._pool = pool
        self._conn: UnixConnection | None = conn
        self._path = path
        self._chunked = chunked

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
        self._conn = None
        try:
            response = conn.getresponse()
        except TimeoutError:
            conn.close()
            raise errors.timed_out(self._pool.mount, self._path, self._pool.mount.timeout) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise errors.lost(self._pool.mount, self._path, exc) from None
        return Reply(self._pool, conn, response, self._path)

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
        try:
            conn.send(data)
        except TimeoutError:
            self.abort()
            raise errors.timed_out(self._pool.mount, self._path, self._pool.mount.timeout) from None
        except OSError as exc:
            # The connector may have answered early (a refused condition, a
            # bad key) and closed; its answer explains more than the broken pipe.
            early = self._early_reply(conn)
            self.abort()
            if early is not None:
                raise early from None
            raise errors.lost(self._pool.mount, self._path, exc) from None

    def _early_reply(self, conn: UnixConnection) -> OSError | None:
        try:
            response = conn.getresponse()
        except (OSError, http.client.HTTPException):
            return None
        if response.status < 400:
            return None
        return Reply(self._pool, conn, response, self._path).error()


def start_upload(
    pool: Pool,
    method: str,
    target: str,
    *,
    path: str,
    headers: Mapping[str, str],
    size: int | None,
) -> Upload:
    """Send the request head; the body follows through the returned Upload.

    With ``size`` the body has a Content-Length, otherwise it is chunked.
    """
    all_headers = dict(headers)
    if size is None:
        all_headers["Transfer-Encoding"] = "chunked"
    else:
        all_headers["Content-Length"] = str(size)
    conn, _ = pool.acquire(path)
    try:
        _send_headers(conn, method, target, all_headers)
    except TimeoutError:
        conn.close()
        raise errors.timed_out(pool.mount, path, pool.mount.timeout) from None
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise errors.lost(pool.mount, path, exc) from None
    return Upload(pool, conn, path, chunked=size is None)
