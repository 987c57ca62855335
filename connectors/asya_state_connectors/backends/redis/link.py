"""The Redis connector's hot path: scripts and read blocks on connections it checks out itself.

Owns: idle connections to one Redis server (``redis.resp`` connections
made from the connection pool's own settings, so URL, credentials, TLS
and database are the pool's), a bound on connections in use with a wait
bounded by the command timeout, the command timeout itself (one
``asyncio.timeout`` around each exchange), running a script by SHA and
loading it when the server answers NOSCRIPT (after a restart or SCRIPT
FLUSH), running one read-only (EVALSHA_RO, or EVALSHA on a Redis before
7.0), MULTI/EXEC blocks of reads, and one retry on a fresh connection
when a pooled one turns out broken.

Why not redis-py's client for this: its pool checkout looks for unread
bytes on every connection it hands out (a system call), the client wraps
each command in retry, callback and parsing layers, and its socket timeout
starts an extra task for every send (``wait_for``); measured on a 1 KiB
read, those came to about as much CPU as the Redis round trip itself.
Every script here is safe to run twice (see ``redis.scripts``) and a read
block changes nothing, so a retry never reports a false conflict.

Must not: be used for commands whose replies need redis-py's parsing
callbacks (SCAN, pipelines): those stay on the client.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as rx

from .resp import Arg, Dialer, RespConnection

T = TypeVar("T")


class RedisLink:
    """Runs registered Lua scripts and read blocks on connections made from ``pool``'s settings."""

    def __init__(
        self, pool: aioredis.ConnectionPool, max_connections: int, wait_timeout: float
    ) -> None:
        self._dialer = Dialer(pool)
        self._idle: deque[RespConnection] = deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._wait_timeout = wait_timeout
        self._command_timeout: float | None = pool.connection_kwargs.get("socket_timeout")
        self._sources: dict[str, bytes] = {}
        self._shas: dict[str, str] = {}
        self._read_only_command = "EVALSHA_RO"

    def register(self, name: str, source: str) -> None:
        data = source.encode()
        self._sources[name] = data
        self._shas[name] = hashlib.sha1(data, usedforsecurity=False).hexdigest()

    async def run(
        self, name: str, keys: Sequence[bytes], args: Sequence[Arg] = (), *, read_only: bool = False
    ) -> Any:
        """The script's reply; raises redis-py's exceptions (the caller maps them).

        ``read_only`` runs it with EVALSHA_RO, which a Redis user without
        write access may be granted (and which refuses any write inside).
        """
        command = self._read_only_command if read_only else "EVALSHA"
        return await self._exchange(
            lambda connection: self._evalsha(connection, command, name, keys, args)
        )

    async def transaction(self, *commands: Sequence[Arg]) -> list[Any]:
        """The replies of read-only ``commands`` run as one MULTI/EXEC block."""
        return await self._exchange(lambda connection: connection.transaction(commands))

    async def _exchange(self, send: Callable[[RespConnection], Awaitable[T]]) -> T:
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
            async with asyncio.timeout(self._command_timeout):
                return await self._run_with_retry(send)
        except TimeoutError:
            raise rx.TimeoutError(f"no answer from Redis within {self._command_timeout}s") from None
        finally:
            self._slots.release()

    async def _run_with_retry(self, send: Callable[[RespConnection], Awaitable[T]]) -> T:
        connection = self._pooled()
        fresh = connection is None
        if connection is None:
            connection = await self._dialer.open()
        try:
            reply = await send(connection)
        except rx.ConnectionError:
            connection.close()
            if fresh:
                raise
            # A pooled connection the server closed while it sat idle: one
            # more try on a new one.
            connection = await self._dialer.open()
            try:
                reply = await send(connection)
            except BaseException:
                connection.close()
                raise
        except rx.ResponseError:
            self._idle.append(connection)  # the connection is fine; the command failed
            raise
        except BaseException:
            # Timed out, cancelled or failed mid-reply: a late reply would
            # answer the next command.
            connection.close()
            raise
        self._idle.append(connection)
        return reply

    def _pooled(self) -> RespConnection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:
                return connection
            connection.close()
        return None

    async def _evalsha(
        self,
        connection: RespConnection,
        command: str,
        name: str,
        keys: Sequence[bytes],
        args: Sequence[Arg],
    ) -> Any:
        sha = self._shas[name]
        try:
            return await connection.call(command, sha, len(keys), *keys, *args)
        except rx.NoScriptError:
            await connection.call("SCRIPT", "LOAD", self._sources[name])
            return await connection.call(command, sha, len(keys), *keys, *args)
        except rx.ResponseError as exc:
            if command == "EVALSHA" or "unknown command" not in str(exc).lower():
                raise
            # Redis before 7.0 has no EVALSHA_RO: the flag the script gets
            # keeps it from writing, so plain EVALSHA is as safe.
            self._read_only_command = "EVALSHA"
            return await self._evalsha(connection, "EVALSHA", name, keys, args)

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
