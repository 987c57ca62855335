"""Redis Cluster for the connector: which node owns a slot, and following the cluster when it moves.

Owns: the slot map (``CLUSTER SLOTS``, asked of any node the connector
knows, starting from the one in ``REDIS_URL``), one ``redis.link`` per node
(same credentials, TLS and limits as the URL's), sending each command to
the primary of its key's slot, and what a cluster answers while it changes:
``MOVED`` (the slot has a new owner: the map is read again and the command
sent there), ``ASK`` (a slot being migrated: this one command goes to the
target after ``ASKING``), ``TRYAGAIN`` and ``CLUSTERDOWN`` (a migration or a
failover in progress) and a node that does not answer (killed, or a
primary being replaced by its replica): the command waits and is sent again
to whoever owns the slot once the map says so, within the command timeout.
Sending a script again is safe: every script is (see ``redis.scripts``).
Also: the cluster's hash tag rules (``slot_of``, ``cluster_root``) and
whether a server runs in cluster mode (``is_cluster``).

Must not: know the key layout beyond the hash tag of a mount's root, or
retry a command past the command timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.crc import key_slot

from .link import RedisLink, ReplicaLag, WaitFor
from .resp import Arg, Dialer

log = logging.getLogger("asya_state_connectors.redis")

T = TypeVar("T")
Address = tuple[str, int]
SLOTS = 16384
# Between two tries while the cluster changes (a failover takes the node
# timeout plus an election): short enough to follow it closely.
_PAUSE = 0.05, 0.25
# A map read again sooner than this after the last one would only read it again.
_REFRESH_GAP = 0.05
# How long one node may take to answer CLUSTER SLOTS before the next is asked.
_PROBE_SECONDS = 1.0


def hash_tag(key: bytes) -> bytes | None:
    """What Redis Cluster hashes for ``key`` when it has a hash tag, else None."""
    start = key.find(b"{")
    if start < 0:
        return None
    end = key.find(b"}", start + 1)
    if end <= start + 1:  # no closing brace, or "{}" (hashed whole)
        return None
    return key[start + 1 : end]


def slot_of(key: bytes) -> int:
    return int(key_slot(key))


def cluster_root(prefix: str) -> str:
    """The key root of a mount on Redis Cluster: ``prefix`` if it has a hash tag, else tagged.

    Every key of a mount starts with its root, so one hash tag in the root
    puts the whole mount in one slot. A prefix without one is wrapped in
    braces (``orders/`` becomes ``{orders/}``); a prefix that cannot be (an
    empty one, or one with a ``}``) is tagged with a digest of itself.
    """
    if hash_tag(prefix.encode("utf-8")) is not None:
        return prefix
    if prefix and "}" not in prefix:
        return "{" + prefix + "}"
    digest = hashlib.sha256(prefix.encode("utf-8")).hexdigest()[:16]
    return "{" + digest + "}" + prefix


async def is_cluster(pool: aioredis.ConnectionPool) -> bool:
    """Whether the server named by ``pool``'s settings runs in cluster mode.

    Asks ``CLUSTER SLOTS`` (which a cluster node answers and a standalone
    server refuses); a user the ACL denies it is taken for standalone, since
    without it the cluster could not be followed anyway.
    """
    if pool.connection_kwargs.get("path"):
        return False  # a Unix socket: one server
    connection = await Dialer(pool).open()
    try:
        await connection.call("CLUSTER", "SLOTS")
    except rx.ResponseError:
        return False  # "cluster support disabled", or NOPERM
    finally:
        connection.close()
    return True


class ClusterLink:
    """``RedisLink``'s interface over every primary of a Redis Cluster, routed by slot."""

    def __init__(
        self,
        pool: aioredis.ConnectionPool,
        max_connections: int,
        timeout: float,
        *,
        wait_for: WaitFor | None = None,
    ) -> None:
        settings = pool.connection_kwargs
        if settings.get("path"):
            raise ValueError("Redis Cluster is reached over TCP, not a Unix socket")
        self._pool = pool
        self._max_connections = max_connections
        self._timeout = timeout
        self._wait_for = wait_for
        self._seed: Address = (str(settings["host"]), int(settings["port"]))
        self._links: dict[Address, RedisLink] = {}
        self._known: list[Address] = [self._seed]
        self._owners: list[Address | None] = [None] * SLOTS
        self._scripts: dict[str, str] = {}
        self._refreshing = asyncio.Lock()
        self._refreshed = 0.0
        self._mapped = False

    def register(self, name: str, source: str) -> None:
        self._scripts[name] = source
        for link in self._links.values():
            link.register(name, source)

    def _link(self, address: Address) -> RedisLink:
        link = self._links.get(address)
        if link is None:
            link = RedisLink(
                self._pool,
                self._max_connections,
                self._timeout,
                address=address,
                wait_for=self._wait_for,
            )
            for name, source in self._scripts.items():
                link.register(name, source)
            self._links[address] = link
        return link

    # -- the RedisLink interface ------------------------------------------------

    async def run(
        self,
        name: str,
        keys: Sequence[bytes],
        args: Sequence[Arg] = (),
        *,
        durable: bool = False,
        read_only: bool = False,
    ) -> Any:
        return await self._routed(
            slot_of(keys[0]),
            lambda link, asking: link.run(
                name, keys, args, durable=durable, asking=asking, read_only=read_only
            ),
        )

    async def transaction(self, *commands: Sequence[Arg]) -> list[Any]:
        """A MULTI/EXEC block, routed by its first command's key (all must share its slot)."""
        return await self._routed(
            _slot_of_arg(commands[0][1]),
            lambda link, asking: link.transaction(*commands, asking=asking),
        )

    async def call(self, *args: Arg) -> Any:
        """One command; routed by its first key (``args[1]``), or to any primary without one."""
        if len(args) < 2:
            return await self._routed(None, lambda link, asking: link.call(*args))
        return await self._routed(
            _slot_of_arg(args[1]), lambda link, asking: link.call(*args, asking=asking)
        )

    async def scan(self, match: bytes, count: int) -> AsyncIterator[bytes]:
        """Every matching key of every primary (each primary's SCAN, one after the other)."""
        if not self._mapped:
            await self._refresh(force=True)
        for address in sorted({owner for owner in self._owners if owner is not None}):
            async for raw in self._link(address).scan(match, count):
                yield raw

    async def close(self) -> None:
        for link in self._links.values():
            await link.close()
        self._links.clear()

    # -- routing ----------------------------------------------------------------

    async def _routed(self, slot: int | None, send: Callable[[RedisLink, bool], Awaitable[T]]) -> T:
        """``send`` to the primary of ``slot``, following the cluster until the timeout."""
        ask: Address | None = None
        last: BaseException | None = None
        try:
            async with asyncio.timeout(self._timeout):
                while True:
                    if ask is not None:
                        address: Address | None = ask
                    else:
                        address = await self._owner(slot)
                    if address is None:  # no node owns the slot (yet): a failover in progress
                        await self._pause()
                        await self._refresh()
                        continue
                    asking, ask = ask is not None, None
                    try:
                        return await send(self._link(address), asking)
                    except rx.ResponseError as exc:
                        word, _, rest = str(exc).partition(" ")
                        if word == "MOVED":
                            last = exc
                            self._moved(rest)
                            await self._refresh()
                        elif word == "ASK":
                            last = exc
                            ask = _address(rest.partition(" ")[2])
                        elif word in ("TRYAGAIN", "CLUSTERDOWN"):
                            last = exc
                            await self._pause()
                            await self._refresh()
                        else:
                            raise
                    except ReplicaLag:
                        raise  # the script ran; whether that matters is the caller's to say
                    except (rx.ConnectionError, rx.TimeoutError, OSError) as exc:
                        # A node killed, restarting or being replaced: ask the
                        # cluster again who owns the slot.
                        last = exc
                        log.debug("redis cluster node %s:%d failed: %s", *address, exc)
                        await self._pause()
                        await self._refresh(force=True)
        except TimeoutError:
            detail = f": {last}" if last is not None else ""
            raise rx.TimeoutError(
                f"Redis Cluster did not settle within {self._timeout:g}s{detail}"
            ) from None

    async def _owner(self, slot: int | None) -> Address | None:
        if not self._mapped:
            await self._refresh(force=True)
        if slot is None:
            owners = [owner for owner in self._owners if owner is not None]
            return owners[0] if owners else None
        return self._owners[slot]

    def _moved(self, rest: str) -> None:
        slot, _, where = rest.partition(" ")
        self._owners[int(slot)] = _address(where)

    async def _pause(self) -> None:
        await asyncio.sleep(random.uniform(*_PAUSE))

    async def _refresh(self, *, force: bool = False) -> None:
        """Read the slot map again from the first node that answers (once for many callers)."""
        asked = time.monotonic()
        async with self._refreshing:
            if self._refreshed >= asked or (
                not force and time.monotonic() - self._refreshed < _REFRESH_GAP
            ):
                return  # someone read it while this caller waited
            failures: list[str] = []
            # Primaries first, then replicas and the seed: a replica knows the map too.
            candidates = list(dict.fromkeys([*filter(None, self._owners), *self._known]))
            for address in candidates:
                try:
                    # A node that does not answer soon is skipped: others know the map.
                    async with asyncio.timeout(min(_PROBE_SECONDS, self._timeout)):
                        reply = await self._link(address).call("CLUSTER", "SLOTS")
                except (rx.RedisError, OSError, TimeoutError) as exc:
                    failures.append(f"{address[0]}:{address[1]}: {exc}")
                    continue
                self._apply(reply, address)
                self._refreshed = time.monotonic()
                return
            raise rx.ConnectionError(
                "no Redis Cluster node answered CLUSTER SLOTS: " + "; ".join(failures)
            )

    def _apply(self, reply: Sequence[Any], asked: Address) -> None:
        owners: list[Address | None] = [None] * SLOTS
        known: list[Address] = []
        for start, end, *nodes in reply:
            addresses = [_node_address(node, asked) for node in nodes]
            known += addresses
            for slot in range(int(start), int(end) + 1):
                owners[slot] = addresses[0]
        self._owners = owners
        self._mapped = True
        self._known = list(dict.fromkeys([*known, self._seed]))


def _slot_of_arg(key: Arg) -> int:
    return slot_of(key if isinstance(key, bytes) else str(key).encode())


def _address(where: str) -> Address:
    host, _, port = where.rpartition(":")
    return host, int(port)


def _node_address(node: Sequence[Any], asked: Address) -> Address:
    """A node of a CLUSTER SLOTS reply; an empty or unknown host is the one that was asked."""
    host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
    if host in ("", "?"):
        host = asked[0]
    return host, int(node[1])


# What the connector sends commands through: one server, or a cluster's primaries.
Link = RedisLink | ClusterLink
