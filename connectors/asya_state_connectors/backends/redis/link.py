"""The Redis connector's connections to one server: scripts, read blocks and plain commands.

Owns: idle connections to one Redis server (``redis.resp`` connections
made from the connection pool's own settings, so URL, credentials, TLS
and database are the pool's; a cluster node's address may replace the
pool's), a bound on connections in use with a wait bounded by the command
timeout, the command timeout itself (one ``asyncio.timeout`` around each
exchange), running a script by SHA and loading it when the server answers
NOSCRIPT (after a restart or SCRIPT FLUSH), waiting for replicas after a
write script when asked (``WAIT``, sent in the same write as the script),
running one read-only (EVALSHA_RO, or EVALSHA on a Redis before 7.0),
MULTI/EXEC blocks of reads, SCAN, and one retry on a fresh connection when
a pooled one turns out broken.

Why not redis-py's client for this: its pool checkout looks for unread
bytes on every connection it hands out (a system call), the client wraps
each command in retry, callback and parsing layers, and its socket timeout
starts an extra task for every send (``wait_for``); measured on a 1 KiB
read, those came to about as much CPU as the Redis round trip itself.
Every script here is safe to run twice (see ``redis.scripts``) and a read
block changes nothing, so a retry never reports a false conflict.

Must not: follow cluster redirects (``redis.cluster`` routes to the node
that owns a slot and retries there) or parse replies beyond what RESP2
gives (callers get bytes, integers and lists).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as rx

from .resp import Arg, Dialer, NotConnected, RespConnection

T = TypeVar("T")


# (replicas, milliseconds): what ``WAIT`` asks after each write script.
WaitFor = tuple[int, int]


class ReplicaLag(rx.TimeoutError):
    """A write script ran, but fewer replicas than asked acknowledged it in time.

    ``reply`` is the script's: whether it changed anything (and so whether
    the missing acknowledgement matters) is for the caller to say.
    """

    def __init__(self, message: str, reply: Any) -> None:
        super().__init__(message)
        self.reply = reply


class RedisLink:
    """Runs registered Lua scripts and read blocks on connections made from ``pool``'s settings."""

    def __init__(
        self,
        pool: aioredis.ConnectionPool,
        max_connections: int,
        wait_timeout: float,
        *,
        address: tuple[str, int] | None = None,
        wait_for: WaitFor | None = None,
    ) -> None:
        self._dialer = Dialer(pool, address)
        self._wait_for = wait_for
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
        self,
        name: str,
        keys: Sequence[bytes],
        args: Sequence[Arg] = (),
        *,
        durable: bool = False,
        asking: bool = False,
        read_only: bool = False,
    ) -> Any:
        """The script's reply; raises redis-py's exceptions (the caller maps them).

        ``durable``: a write script, followed by ``WAIT`` when the link was
        given ``wait_for``; raises ``ReplicaLag`` (after the script ran, with
        its reply) when too few replicas acknowledged it. ``asking``: sent
        after ``ASKING`` (a cluster slot being migrated to this node).
        ``read_only`` runs it with EVALSHA_RO, which a Redis user without
        write access may be granted (and which refuses any write inside).
        """
        wait_for = self._wait_for if durable else None
        command = self._read_only_command if read_only else "EVALSHA"
        reply, acked = await self._exchange(
            lambda connection: self._evalsha(
                connection, command, name, keys, args, wait_for, asking
            )
        )
        if wait_for is not None and acked < wait_for[0]:
            raise ReplicaLag(
                f"the change was applied but {acked} of {wait_for[0]} replicas "
                f"acknowledged it within {wait_for[1]} ms",
                reply,
            )
        return reply

    async def transaction(self, *commands: Sequence[Arg], asking: bool = False) -> list[Any]:
        """The replies of ``commands`` run as one MULTI/EXEC block."""
        if asking:
            return await self._exchange(lambda connection: _asking(connection, commands))
        return await self._exchange(lambda connection: connection.transaction(commands))

    async def call(self, *args: Arg, asking: bool = False) -> Any:
        """The reply of one plain command."""
        if asking:
            return (await self.transaction(args, asking=True))[0]
        return await self._exchange(lambda connection: connection.call(*args))

    async def scan(self, match: bytes, count: int) -> AsyncIterator[bytes]:
        """Every key of this server matching the SCAN pattern ``match`` (each at least once)."""
        cursor = b"0"
        while True:
            cursor, found = await self.call("SCAN", cursor, "MATCH", match, "COUNT", count)
            for raw in found:
                yield raw
            if cursor == b"0":
                return

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
            # more try on a new one. The first send may have reached a server
            # that applied it and died before answering, so failing to
            # connect now proves nothing about the command: not NotConnected.
            try:
                connection = await self._dialer.open()
            except NotConnected as exc:
                raise rx.ConnectionError(str(exc)) from exc
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
        wait_for: WaitFor | None,
        asking: bool,
    ) -> tuple[Any, int]:
        """The script's reply and how many replicas acknowledged it (0 without ``wait_for``)."""
        evalsha = (command, self._shas[name], len(keys), *keys, *args)
        if wait_for is None and not asking:  # the usual case: one command, one future
            try:
                return await connection.call(*evalsha), 0
            except rx.NoScriptError:
                await connection.call("SCRIPT", "LOAD", self._sources[name])
                return await connection.call(*evalsha), 0
            except rx.ResponseError as exc:
                if not _evalsha_ro_missing(command, exc):
                    raise
                self._read_only_command = "EVALSHA"
                return await self._evalsha(
                    connection, "EVALSHA", name, keys, args, wait_for, asking
                )
        commands: list[Sequence[Arg]] = [evalsha]
        if asking:
            commands.insert(0, ("ASKING",))
        if wait_for is not None:
            commands.append(("WAIT", *wait_for))
        replies = await connection.pipeline(commands)
        script_reply = replies[-1 if wait_for is None else -2]
        if isinstance(script_reply, rx.NoScriptError):
            await connection.call("SCRIPT", "LOAD", self._sources[name])
            replies = await connection.pipeline(commands)
        elif isinstance(script_reply, rx.ResponseError) and _evalsha_ro_missing(
            command, script_reply
        ):
            self._read_only_command = "EVALSHA"
            return await self._evalsha(connection, "EVALSHA", name, keys, args, wait_for, asking)
        for reply in replies:
            if isinstance(reply, rx.RedisError):
                raise reply
        if wait_for is None:
            return replies[-1], 0
        return replies[-2], int(replies[-1])

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


async def _asking(connection: RespConnection, commands: Sequence[Sequence[Arg]]) -> list[Any]:
    """``commands`` in one MULTI/EXEC block preceded by ``ASKING`` (which lasts the block)."""
    await connection.call("ASKING")
    return await connection.transaction(commands)


def _evalsha_ro_missing(command: str, exc: rx.ResponseError) -> bool:
    """Redis before 7.0 has no EVALSHA_RO; the prune flag the script gets keeps
    it from writing, so plain EVALSHA is as safe there."""
    return command != "EVALSHA" and "unknown command" in str(exc).lower()
