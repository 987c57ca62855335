"""The Redis connector's hot path: its Lua scripts run on connections it checks out itself.

Owns: idle connections to one Redis server (made from the connection
pool's own settings, so URL, credentials, TLS, database and timeouts are
the pool's), a bound on connections in use with a wait bounded by the
command timeout, running a script by SHA and loading it when the server
answers NOSCRIPT (after a restart or SCRIPT FLUSH), and one retry on a
fresh connection when a pooled one turns out broken.

Why not redis-py's client for this: its pool checkout looks for unread
bytes on every connection it hands out (a system call), and the client
wraps each command in retry, callback and parsing layers; measured on a
1 KiB read, those came to about as much CPU as the Redis round trip
itself. For the same reason the command is packed here and the command
timeout is one ``asyncio.timeout`` around the whole exchange: redis-py's
own socket timeout starts an extra task for every send (``wait_for``), a
third of the connector's CPU for a small read. Every script here is safe
to run twice (see ``redis_scripts``), so a retry never reports a false
conflict.

Must not: be used for commands whose replies need redis-py's parsing
callbacks (SCAN, pipelines): those stay on the client.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis import exceptions as rx

Arg = bytes | str | int | float

# Arguments longer than this are sent as their own buffer rather than copied
# into the command (redis-py draws the same line).
_COPY_LIMIT = 6000


def pack(*args: Arg) -> list[bytes]:
    """One command in the Redis protocol (RESP2 array of bulk strings), as buffers to send."""
    buffers: list[bytes] = []
    head = b"*%d\r\n" % len(args)
    for arg in args:
        if isinstance(arg, bytes):
            value = arg
        elif isinstance(arg, str):
            value = arg.encode()
        elif isinstance(arg, int):
            value = b"%d" % arg
        else:
            value = repr(arg).encode()
        if len(value) > _COPY_LIMIT:
            buffers.append(head + b"$%d\r\n" % len(value))
            buffers.append(value)
            head = b"\r\n"
        else:
            head += b"$%d\r\n%b\r\n" % (len(value), value)
    buffers.append(head)
    return buffers


class ScriptLink:
    """Runs registered Lua scripts on connections made from ``pool``'s settings."""

    def __init__(
        self, pool: aioredis.ConnectionPool, max_connections: int, wait_timeout: float
    ) -> None:
        self._pool = pool
        self._idle: deque[aioredis.Connection] = deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._wait_timeout = wait_timeout
        # The pool's settings without its socket timeout: the command timeout
        # is applied once per exchange in _evalsha instead.
        self._connection_kwargs = {**pool.connection_kwargs, "socket_timeout": None}
        self._command_timeout: float | None = pool.connection_kwargs.get("socket_timeout")
        self._sources: dict[str, bytes] = {}
        self._shas: dict[str, str] = {}

    def register(self, name: str, source: str) -> None:
        data = source.encode()
        self._sources[name] = data
        self._shas[name] = hashlib.sha1(data, usedforsecurity=False).hexdigest()

    async def run(self, name: str, keys: Sequence[bytes], args: Sequence[Arg] = ()) -> Any:
        """The script's reply; raises redis-py's exceptions (the caller maps them)."""
        if self._slots.locked():
            try:
                await asyncio.wait_for(self._slots.acquire(), self._wait_timeout)
            except TimeoutError:
                raise rx.ConnectionError(
                    f"no Redis connection free within {self._wait_timeout:g}s"
                ) from None
        else:
            await self._slots.acquire()  # a free slot: no timer, no task
        try:
            return await self._run_with_retry(name, keys, args)
        finally:
            self._slots.release()

    async def _run_with_retry(self, name: str, keys: Sequence[bytes], args: Sequence[Arg]) -> Any:
        fresh = not self._idle
        connection = self._idle.pop() if self._idle else self._connection()
        try:
            reply = await self._evalsha(connection, name, keys, args)
        except (rx.ConnectionError, rx.TimeoutError, ConnectionError) as exc:
            await connection.disconnect()
            if fresh or isinstance(exc, rx.TimeoutError):
                raise
            # A pooled connection the server closed while it sat idle: one
            # more try on a new one.
            connection = self._connection()
            try:
                reply = await self._evalsha(connection, name, keys, args)
            except BaseException:
                await connection.disconnect()
                raise
        except rx.ResponseError:
            self._idle.append(connection)  # the connection is fine; the command failed
            raise
        except BaseException:
            # Cancelled or failed mid-reply: unread bytes would answer the next command.
            await connection.disconnect()
            raise
        self._idle.append(connection)
        return reply

    async def _evalsha(
        self,
        connection: aioredis.Connection,
        name: str,
        keys: Sequence[bytes],
        args: Sequence[Arg],
    ) -> Any:
        sha = self._shas[name]
        try:
            async with asyncio.timeout(self._command_timeout):
                try:
                    return await _command(connection, "EVALSHA", sha, len(keys), *keys, *args)
                except rx.NoScriptError:
                    await _command(connection, "SCRIPT", "LOAD", self._sources[name])
                    return await _command(connection, "EVALSHA", sha, len(keys), *keys, *args)
        except TimeoutError:
            # Mid-reply: the caller drops the connection, as it does for any timeout.
            raise rx.TimeoutError(f"no answer from Redis within {self._command_timeout}s") from None

    def _connection(self) -> aioredis.Connection:
        # The pool's own class and settings: URL, credentials, TLS, database, timeouts.
        return cast(aioredis.Connection, self._pool.connection_class(**self._connection_kwargs))

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().disconnect()


async def _command(connection: aioredis.Connection, *args: Arg) -> Any:
    await connection.send_packed_command(pack(*args), check_health=False)
    return await connection.read_response()
