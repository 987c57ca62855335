"""``redis-buffered-cas``: objects as Redis strings with compare-and-swap on a stored revision.

Owns: the Redis connector — configuration (the URL is parsed by redis-py's
connection pool; every command runs on ``redis.link``'s own connections, or
``redis.cluster``'s on a cluster), the key root of the topology, streaming
bodies in and out, listing, TTL and the Redis error table. The storage layout
and the atomic scripts live in ``redis.scripts``.

- Compare-and-swap: every write stores a fresh random etag beside the value.
  A conditional write sends the etag the writer read; one Lua script compares
  it with the stored one and replaces value and metadata, so two writers
  holding the same revision cannot both win. Create-only is the same script
  checking absence.
- Streaming: bodies up to 1 MiB go to Redis in the committing script; larger
  ones are appended to a staging key chunk by chunk and renamed over the
  value at commit, so the connector holds at most about 1 MiB per request
  and a failed upload leaves the previous version untouched. Reads stream
  with GETRANGE in 256 KiB chunks, each in one MULTI/EXEC block with the
  etag, so a read that overlaps an overwrite fails instead of mixing two
  versions; stat is the metadata hash and PTTL in one block.
- TTL: ``user.asya.ttl`` reads the remaining seconds (-1: none) and sets or
  removes the expiry. An overwrite or append keeps the key's expiry (like
  ``SET ... KEEPTTL``); a delete forgets it. A rename carries it along.
- Files and directories: the scripts that create a key refuse one below an
  object or over a prefix with objects, atomically (see ``redis.scripts``).
  A stat asks the same questions in its read block, so a missing key is
  explained with the same round trip.
- Listing: one script call per page over the mount's name index (a sorted
  set the scripts keep with every create, delete and rename), paginated by
  the last name returned; neither a listing nor a directory check ever
  walks the keyspace. Data written before the index existed is indexed on
  first use (``redis.index``). A Redis user that may only read lists and
  stats too: its listings and directory checks run read-only and leave the
  names of vanished objects for writers to remove.
- Idempotent retries: a request's ``Asya-Request-Id`` becomes the etag it
  writes, and the script that applies it leaves a record of it beside the
  key expiring after ``idempotency.RECORD_SECONDS`` (two minutes), so a
  retried write, append, rename or delete whose first attempt was applied
  is answered with its original outcome inside the same script, also after
  other writers changed the key since.
- Abandoned uploads: a staging key's name carries its owner, a digest of the
  host name and the connector's socket (what a restarted sidecar of the same
  pod has again); when a connector starts it deletes the staged values of
  its previous life. The one-hour expiry covers owners that never return.
- Size limit: ``REDIS_MAX_VALUE_BYTES`` (default 64 MiB, at most 512 MiB, the
  Redis string limit), enforced from the declared size or while streaming.

- Topologies: standalone Redis (or a primary) with the plain
  ``STATE_PREFIX`` layout, or Redis Cluster (``redis.cluster``): the root
  gets a hash tag so a mount is one slot, and commands follow the cluster
  (redirects, resharding, failover). ``REDIS_CLUSTER=auto`` asks the server
  on first use, so the layout is settled before any key is named.
- Replica acknowledgement: with ``REDIS_WAIT_REPLICAS`` every script that
  changes an object is followed by ``WAIT`` (``redis.link``); too few
  acknowledgements fail the request as a timeout, although the write is
  applied (its same-id retry then succeeds).

Environment: ``REDIS_URL`` (required; ``redis://[user:password@]host:port/db``,
``rediss://`` for TLS with options such as ``?ssl_ca_certs=/path/ca.pem``, or
``unix:///path/redis.sock?db=0``; on a cluster, any node), ``REDIS_CLUSTER``
(``auto``, ``true``, ``false``), ``STATE_PREFIX``, ``REDIS_MAX_VALUE_BYTES``,
``REDIS_MAX_CONNECTIONS`` (default 50 per Redis server, for every command),
``REDIS_TIMEOUT_SECONDS`` (per command, default 10, following a cluster
included), ``REDIS_WAIT_REPLICAS`` (default 0) and ``REDIS_WAIT_TIMEOUT_MS``
(default 1000), ``REDIS_INDEX_SCAN`` (default true; false when the
database holds nothing written before the name index, so a new mount's
index starts empty instead of after a SCAN).

Must not: use WATCH/MULTI for conditional writes (the check must be against
the revision the writer read, inside the script; MULTI only groups reads),
SCAN the keyspace on a request path (only ``redis.index`` does, once, and
the start-up sweep), or name a key outside its mount's root (one slot on a
cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Self
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis import exceptions as rx

from ... import idempotency
from ...errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BackendUnreachable,
    BadRequest,
    ConfigError,
    Conflict,
    ConnectorError,
    NotADirectory,
    NotFound,
    PermissionDenied,
    TooLarge,
)
from ...interface import (
    UNCONDITIONAL,
    Capability,
    Connector,
    ListPage,
    Missing,
    ObjectMeta,
    RangeSpec,
    ReadStream,
    WriteCondition,
    is_a_directory,
)
from ...keys import ancestors
from ...settings import Settings
from . import scripts as lua
from .cluster import ClusterLink, Link, cluster_root, is_cluster
from .index import SCAN_COUNT, IndexBuilder, glob_escape
from .link import RedisLink, ReplicaLag, WaitFor
from .resp import NotConnected

log = logging.getLogger("asya_state_connectors.redis")

MiB = 1024 * 1024
CHUNK = 256 * 1024
# Bodies up to this size are sent inside the committing script; larger ones are staged.
INLINE_BODY = MiB
STAGED_TTL_SECONDS = 3600
DEFAULT_MAX_VALUE = 64 * MiB
REDIS_STRING_LIMIT = 512 * MiB
# How long the start-up sweep of a previous life's staged values may run.
_SWEEP_SECONDS = 60.0
# A script that answers NEEDS_INDEX again after the index was built: someone
# keeps deleting it.
INDEX_ATTEMPTS = 3
# How Redis words an ACL refusal of a command or key inside a script.
_SCRIPT_ACL_DENIAL = "The user executing the script can't"
_CLUSTER_MODES = {"auto": None, "true": True, "false": False}


def _map_redis_error(exc: BaseException, key: str | None) -> ConnectorError:
    """The Redis backend's error table (order matters: subclasses first)."""
    if isinstance(exc, ConnectorError):
        return exc
    detail = str(exc) or type(exc).__name__
    where = f" on {key!r}" if key else ""
    if isinstance(
        exc,
        rx.AuthenticationError
        | rx.AuthorizationError
        | rx.AuthenticationWrongNumberOfArgsError
        | rx.NoPermissionError,
    ) or (isinstance(exc, rx.ResponseError) and _SCRIPT_ACL_DENIAL in detail):
        return PermissionDenied(f"Redis refused access{where}: {detail}", key=key)
    if isinstance(exc, rx.TimeoutError | TimeoutError):
        return BackendTimeout(f"Redis did not answer in time{where}: {detail}", key=key)
    if isinstance(exc, NotConnected):
        # Nothing was sent: the request certainly was not applied.
        return BackendUnreachable(f"Redis is unreachable{where}: {detail}", key=key)
    if isinstance(exc, rx.ConnectionError | rx.ReadOnlyError | ConnectionError | OSError):
        return BackendUnavailable(f"Redis is unreachable{where}: {detail}", key=key)
    return BackendError(f"Redis error{where}: {detail}", key=key)


@contextlib.contextmanager
def _redis_errors(key: str | None = None) -> Iterator[None]:
    try:
        yield
    except ConnectorError:
        raise
    except (rx.RedisError, OSError) as exc:
        raise _map_redis_error(exc, key) from exc


def _not_a_directory(key: str) -> NotADirectory:
    return NotADirectory(f"a parent of {key!r} is a file, not a directory", key=key)


def _conflict(key: str, status: int) -> ConnectorError | None:
    """The file-versus-directory refusal a script answered with, if any."""
    if status == lua.NOT_A_DIRECTORY:
        return _not_a_directory(key)
    if status == lua.IS_A_DIRECTORY:
        return is_a_directory(key)
    return None


def _refuse_path(key: str, status: int) -> None:
    conflict = _conflict(key, status)
    if conflict is not None:
        raise conflict


def _status(reply: Any) -> Any:
    return reply[0] if isinstance(reply, list) and reply else reply


def _changed(reply: Any) -> bool:
    """Whether a changing script's reply says it changed something (success, or renamed metadata)."""
    status = _status(reply)
    return status == lua.OK or isinstance(status, bytes)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _meta(key: str, fields: Sequence[Any]) -> ObjectMeta:
    """ObjectMeta from a reply in ``redis.scripts.META_FIELDS`` order."""
    etag, size, content_type, mtime = fields[:4]
    return ObjectMeta(
        key=key,
        size=int(size),
        etag=_text(etag) or "",
        content_type=_text(content_type) or None,
        last_modified=float(mtime) if mtime is not None else None,
    )


def staging_owner(socket_path: str | None) -> str:
    """The owner part of staging keys: stable across restarts of one sidecar, else random."""
    if not socket_path:
        return secrets.token_hex(6)
    seed = f"{socket.gethostname()}\x00{socket_path}".encode()
    return hashlib.sha256(seed).hexdigest()[:12]


def _parse_ttl(value: str, key: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise BadRequest(
            f"user.asya.ttl must be whole seconds (-1 for none), got {value!r}", key=key
        ) from None


class RedisBufferedCas(Connector):
    name = "redis-buffered-cas"
    capabilities = frozenset(
        {
            Capability.CAS,
            Capability.CREATE_ONLY,
            Capability.APPEND,
            Capability.RANGE_READ,
            Capability.TTL,
            Capability.LAST_MODIFIED,
        }
    )
    writable_xattrs = frozenset({"ttl", "content_type"})
    idempotent_retries = frozenset({"write", "create", "append", "rename", "delete", "replaced"})

    def __init__(
        self,
        pool: aioredis.ConnectionPool,
        prefix: str,
        max_object_size: int,
        *,
        max_connections: int,
        timeout: float,
        owner: str | None = None,
        scan_for_index: bool = True,
        cluster: bool | None = False,
        wait_for: WaitFor | None = None,
    ) -> None:
        """``cluster``: whether ``pool`` names a Redis Cluster node; None asks the server first."""
        self.max_object_size = self._limit = max_object_size
        self._prefix = prefix
        self._pool = pool
        self._max_connections = max_connections
        self._timeout = timeout
        self._wait_for = wait_for
        self._scan_for_index = scan_for_index
        self._settling = asyncio.Lock()
        # Who stages uploads: the same name after a restart of this sidecar.
        self._owner = (owner or secrets.token_hex(6)).encode()
        self._sweep: asyncio.Task[None] | None = None
        # Starts every staged name of this life, so the sweep that runs while
        # it already serves leaves its own uploads alone.
        self._life = secrets.token_hex(4).encode() + b"."
        self._settled = False
        self._layout(bool(cluster))
        if cluster is not None:
            self._settled = True

    def _layout(self, cluster: bool) -> None:
        """The mount's key root and the link for a standalone server or a cluster.

        On Redis Cluster the root carries a hash tag (``cluster_root``), so
        all of a mount's keys share one slot and every script can run.
        """
        self.cluster = cluster
        root = cluster_root(self._prefix) if cluster else self._prefix
        self._root = root.encode("utf-8")
        self._link: Link
        if cluster:
            self._link = ClusterLink(
                self._pool, self._max_connections, self._timeout, wait_for=self._wait_for
            )
        else:
            self._link = RedisLink(
                self._pool, self._max_connections, self._timeout, wait_for=self._wait_for
            )
        for name in lua.SCRIPTS:
            self._link.register(name, getattr(lua, name))
        self._indexer = IndexBuilder(self._link, self._root, scan=self._scan_for_index)
        self._index = self._indexer.index
        # Whether listings and directory checks may remove names of objects
        # that are gone; False once Redis refused this user a write.
        self._prunes = True

    async def _settle(self) -> None:
        """With ``REDIS_CLUSTER=auto``: ask the server whether it is a cluster node, once.

        Every operation awaits this before it computes keys (the key root
        depends on the answer); once settled it returns without the lock.
        """
        if self._settled:
            return
        async with self._settling:
            if self._settled:
                return
            with _redis_errors():
                async with asyncio.timeout(self._timeout):
                    cluster = await is_cluster(self._pool)
            if cluster:
                await self._link.close()
                self._layout(True)
            self._settled = True

    async def layout(self) -> tuple[Link, bytes]:
        """The link and key root this mount uses, once the server said what it is."""
        await self._settle()
        return self._link, self._root

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        url = settings.required("REDIS_URL", hint="e.g. redis://user:password@redis:6379/0")
        scheme = url.partition("://")[0].lower()
        if scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"REDIS_URL must start with redis://, rediss:// or unix://, got {scheme!r}"
            )
        database = urlsplit(url).path.strip("/")
        if scheme != "unix" and database and not database.isdigit():
            raise ConfigError(f"REDIS_URL must end with a database number, got /{database}")
        limit = settings.integer("REDIS_MAX_VALUE_BYTES", DEFAULT_MAX_VALUE, minimum=1)
        if limit > REDIS_STRING_LIMIT:
            raise ConfigError(
                f"REDIS_MAX_VALUE_BYTES must be at most {REDIS_STRING_LIMIT} (the Redis string limit), got {limit}"
            )
        timeout = settings.number("REDIS_TIMEOUT_SECONDS", 10.0, minimum=0.1)
        max_connections = settings.integer("REDIS_MAX_CONNECTIONS", 50, minimum=1)
        mode = (settings.optional("REDIS_CLUSTER", "auto") or "auto").strip().lower()
        if mode not in _CLUSTER_MODES:
            raise ConfigError(f"REDIS_CLUSTER must be auto, true or false, got {mode!r}")
        cluster = _CLUSTER_MODES[mode]
        if cluster and scheme == "unix":
            raise ConfigError("REDIS_CLUSTER=true needs a redis:// or rediss:// URL, not unix://")
        replicas = settings.integer("REDIS_WAIT_REPLICAS", 0, minimum=0)
        wait_ms = settings.integer("REDIS_WAIT_TIMEOUT_MS", 1000, minimum=1)
        if replicas and wait_ms >= timeout * 1000:
            raise ConfigError(
                f"REDIS_WAIT_TIMEOUT_MS ({wait_ms}) must be below REDIS_TIMEOUT_SECONDS ({timeout:g}s)"
            )
        try:
            # Parses the URL (credentials, TLS options, database) for the
            # connector's own connections (``redis.link``); it opens none itself.
            pool = aioredis.ConnectionPool.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=min(timeout, 5.0)
            )
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"REDIS_URL is not a valid Redis URL: {exc}") from exc
        return cls(
            pool,
            settings.prefix,
            limit,
            max_connections=max_connections,
            timeout=timeout,
            owner=staging_owner(settings.optional("CONNECTOR_SOCKET")),
            scan_for_index=settings.flag("REDIS_INDEX_SCAN", True),
            cluster=cluster,
            wait_for=(replicas, wait_ms) if replicas else None,
        )

    # -- layout -------------------------------------------------------------

    def _data(self, key: str) -> bytes:
        return self._root + key.encode("utf-8")

    def _keys(self, key: str) -> list[bytes]:
        data = self._data(key)
        return [data, data + lua.META_SUFFIX]

    def _ancestor_metas(self, key: str) -> list[bytes]:
        """The metadata hashes whose existence would make ``key``'s ancestors files."""
        return [self._data(parent) + lua.META_SUFFIX for parent in ancestors(key)]

    def _staging_key(self, key: str) -> bytes:
        return (
            self._data(key)
            + lua.STAGED_INFIX
            + self._owner
            + b"\x00"
            + self._life
            + secrets.token_hex(8).encode()
        )

    async def _run(
        self,
        script: str,
        key: str | None,
        keys: list[bytes],
        args: list[Any],
        *,
        durable: bool = False,
    ) -> Any:
        """Run a script, building the index when it asks for it and again while it prunes.

        ``durable``: a script that changes an object (``REDIS_WAIT_REPLICAS`` applies).
        """
        attempts = 0
        while True:
            reply = await self._script(script, key, keys, args, durable=durable)
            status = _status(reply)
            if status == lua.BUSY:
                continue  # it removed a batch of vanished names; the rest next time
            if status != lua.NEEDS_INDEX:
                return reply
            attempts += 1
            if attempts > INDEX_ATTEMPTS:
                raise BackendError(
                    f"the name index of {self._prefix!r} keeps disappearing; is something deleting it?",
                    key=key,
                )
            with _redis_errors(key):
                await self._indexer.ensure()

    async def _script(
        self, script: str, key: str | None, keys: list[bytes], args: list[Any], *, durable: bool
    ) -> Any:
        """One script call; with ``REDIS_WAIT_REPLICAS``, a change too few replicas have fails."""
        with _redis_errors(key):
            try:
                return await self._link.run(script, keys, args, durable=durable)
            except ReplicaLag as lag:
                if _changed(lag.reply):
                    raise
                return lag.reply  # a refusal or a retry signal: nothing to replicate

    async def _run_reading(
        self, script: str, key: str | None, keys: list[bytes], args: list[Any]
    ) -> Any:
        """Run a script that only reads, except for pruning dead names when the user may write.

        A Redis user without write access (``+@read`` and EVALSHA_RO, say)
        is refused the first prune, or the index build; from then on this
        connector runs the script read-only, stepping over dead names and
        leaving them to writers. A mount whose index was never built cannot
        be listed by such a user until a writer (or ``asya-state reindex``)
        builds it.
        """
        if self._prunes:
            try:
                return await self._run(script, key, keys, [*args, "1"])
            except PermissionDenied as exc:
                self._prunes = False
                log.warning(
                    "Redis refused %r a write (%s); listings and directory checks of %r"
                    " go on read-only and leave names of vanished objects to writers",
                    self._prefix,
                    exc.message,
                    self._prefix,
                )
        with _redis_errors(key):
            reply = await self._link.run(script, keys, [*args, "0"], read_only=True)
        if _status(reply) == lua.NEEDS_INDEX:
            raise PermissionDenied(
                f"the name index of {self._prefix!r} is not built yet, and this Redis user may"
                " not build it: start a connector whose user may write (+@write +@scripting"
                " +time), or run `asya-state reindex` with such a user",
                key=key,
            )
        return reply

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> None:
        # In the background and bounded: a Redis that is slow, silent or not
        # there yet must not hold the connector's start (its readiness check
        # says what is wrong); values this sweep misses expire on their own.
        self._sweep = asyncio.create_task(self._discard_abandoned_quietly())

    async def _discard_abandoned_quietly(self) -> None:
        with contextlib.suppress(ConnectorError, rx.RedisError, OSError, TimeoutError):
            async with asyncio.timeout(_SWEEP_SECONDS):
                await self.discard_abandoned_uploads()

    async def discard_abandoned_uploads(self) -> int:
        """Delete the staged values this connector's previous life left behind; how many.

        On Redis Cluster the SCAN visits every primary.
        """
        await self._settle()
        pattern = (
            glob_escape(self._data(""))
            + b"*"
            + glob_escape(lua.STAGED_INFIX + self._owner + b"\x00")
            + b"*"
        )
        mine = lua.STAGED_INFIX + self._owner + b"\x00" + self._life
        found = [raw async for raw in self._link.scan(pattern, SCAN_COUNT) if mine not in raw]
        # One at a time: on a cluster each key is routed to its own slot's primary.
        for raw in found:
            await self._link.call("DEL", raw)
        return len(found)

    async def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweep
        await self._link.close()

    async def check_health(self) -> None:
        await self._settle()
        with _redis_errors():
            await self._link.call("PING")

    # -- stat and read --------------------------------------------------------

    async def _stat_reply(self, key: str) -> list[Any]:
        """Metadata in ``META_FIELDS`` order, then the milliseconds to expiry (-1: none).

        The same block asks why the key would be missing (a parent that is a
        file, the first name below it, whether the index is complete), so a
        miss raises ``Missing`` with its answer and costs no second round trip.
        """
        await self._settle()
        meta_key = self._keys(key)[1]
        parents = self._ancestor_metas(key)
        dir_name = key.encode("utf-8") + b"/"
        commands: list[tuple[Any, ...]] = [
            ("HMGET", meta_key, *lua.META_FIELDS),
            ("PTTL", meta_key),
            ("ZRANGEBYLEX", self._index, b"[" + dir_name, b"(" + dir_name + b"\xff", "LIMIT", 0, 1),
            ("ZSCORE", self._index, lua.COMPLETE),
        ]
        if parents:
            commands.append(("EXISTS", *parents))
        with _redis_errors(key):
            fields, pttl, below, complete, *parent_files = await self._link.transaction(*commands)
        if fields[0] is not None:
            return [*fields, pttl]
        if parent_files and parent_files[0]:
            raise Missing(key, _not_a_directory(key))
        if complete is not None and not below:
            raise Missing(key, None)
        # A name below it that may have expired, or no complete index yet: the script decides.
        raise Missing(key, await self.path_conflict(key))

    async def path_conflict(self, key: str) -> ConnectorError | None:
        """One script call: the ancestors' metadata hashes and a range of the index."""
        await self._settle()
        status = await self._run_reading(
            "EXPLAIN",
            key,
            [self._index, *self._ancestor_metas(key)],
            [self._root, key],
        )
        return _conflict(key, status)

    async def stat(self, key: str) -> ObjectMeta:
        return _meta(key, await self._stat_reply(key))

    async def read(self, key: str, byte_range: RangeSpec | None = None) -> ReadStream:
        guess = byte_range.first if byte_range is not None and byte_range.first else 0
        await self._settle()
        keys = self._keys(key)
        with _redis_errors(key):
            fields, first = await self._link.transaction(
                ("HMGET", keys[1], *lua.META_FIELDS),
                ("GETRANGE", keys[0], guess, guess + CHUNK - 1),
            )
        if fields[0] is None:
            raise NotFound(f"no object at {key!r}", key=key)
        meta = _meta(key, fields)
        start, length = (0, meta.size) if byte_range is None else byte_range.resolve(meta.size, key)
        # A suffix range was guessed to start at 0: keep only what falls inside it.
        offset = start - guess
        head = first[offset : offset + length] if 0 <= offset < len(first) else b""
        return ReadStream(meta, start, length, self._chunks(keys, meta, start, length, head))

    async def _chunks(
        self, keys: list[bytes], meta: ObjectMeta, start: int, length: int, head: bytes
    ) -> AsyncIterator[bytes]:
        if head:
            yield head
        position, end = start + len(head), start + length
        while position < end:
            last = min(end, position + CHUNK) - 1
            with _redis_errors(meta.key):
                etag, chunk = await self._link.transaction(
                    ("HGET", keys[1], "etag"), ("GETRANGE", keys[0], position, last)
                )
            if _text(etag) != meta.etag:
                raise Conflict(f"{meta.key!r} changed while it was being read", key=meta.key)
            if not chunk:
                raise BackendError(f"{meta.key!r} ended early while being read", key=meta.key)
            position += len(chunk)
            yield chunk

    # -- write ----------------------------------------------------------------

    def _check_size(self, key: str, size: int) -> None:
        if size > self._limit:
            raise TooLarge(f"object exceeds {self._limit} bytes", key=key)

    async def _take_body(
        self, key: str, body: AsyncIterator[bytes], already: int = 0
    ) -> tuple[bytes, bytes | None]:
        """Consume ``body``: ``(bytes, None)`` if it fits inline, else ``(b"", staging key)``.

        The caller owns the staging key and must delete it unless a script consumed it.
        """
        parts: list[bytes] = []
        buffered = 0
        iterator = aiter(body)
        async for chunk in iterator:
            parts.append(chunk)
            buffered += len(chunk)
            self._check_size(key, already + buffered)
            if buffered > INLINE_BODY:
                break
        else:
            return b"".join(parts), None
        staging = self._staging_key(key)
        try:
            total = buffered
            await self._stage(key, staging, b"".join(parts), first=True)
            parts, buffered = [], 0
            async for chunk in iterator:
                parts.append(chunk)
                buffered += len(chunk)
                total += len(chunk)
                self._check_size(key, already + total)
                if buffered >= INLINE_BODY:
                    await self._stage(key, staging, b"".join(parts))
                    parts, buffered = [], 0
            if parts:
                await self._stage(key, staging, b"".join(parts))
        except BaseException:
            await self._discard(staging)
            raise
        return b"", staging

    async def _stage(self, key: str, staging: bytes, data: bytes, *, first: bool = False) -> None:
        with _redis_errors(key):
            if first:
                await self._link.call("SET", staging, data, "EX", STAGED_TTL_SECONDS)
                return
            await self._link.transaction(
                ("APPEND", staging, data), ("EXPIRE", staging, STAGED_TTL_SECONDS)
            )

    async def _discard(self, staging: bytes) -> None:
        # Best effort: the staging key expires on its own if Redis is gone.
        with contextlib.suppress(rx.RedisError, OSError):
            await self._link.call("DEL", staging)

    async def write(
        self,
        key: str,
        body: AsyncIterator[bytes],
        *,
        size: int | None = None,
        condition: WriteCondition = UNCONDITIONAL,
        content_type: str | None = None,
    ) -> ObjectMeta:
        if size is not None:
            self._check_size(key, size)
        await self._settle()
        inline, staging = await self._take_body(key, body)
        parents = self._ancestor_metas(key)
        keys = [*self._keys(key), self._index, *parents]
        etag = idempotency.new_etag()
        expected = "*" if condition.if_none_match else (condition.if_match or "")
        args: list[Any] = [
            expected,
            etag,
            content_type or "",
            len(parents),
            self._root,
            key,
            _record_window(),
        ]
        if staging is None:
            args.append(inline)
        else:
            keys.append(staging)
        try:
            reply = await self._run("WRITE", key, keys, args, durable=True)
        finally:
            if staging is not None:
                await self._discard(staging)
        _refuse_path(key, reply[0])
        if reply[0] == lua.CONFLICT:
            if condition.if_none_match:
                raise Conflict(f"{key!r} already exists", key=key)
            raise Conflict(f"{key!r} changed since it was read", key=key)
        return ObjectMeta(
            key=key,
            size=int(reply[1]),
            etag=etag,
            content_type=content_type or None,
            last_modified=float(reply[2]),
        )

    async def append(self, key: str, body: AsyncIterator[bytes]) -> ObjectMeta:
        await self._settle()
        parents = self._ancestor_metas(key)
        keys = [*self._keys(key), self._index, *parents]
        with _redis_errors(key):
            current = int(await self._link.call("STRLEN", keys[0]))
        inline, staging = await self._take_body(key, body, already=current)
        etag = idempotency.new_etag()
        args: list[Any] = [etag, self._limit, len(parents), self._root, key, _record_window()]
        if staging is None:
            args.append(inline)
        else:
            keys.append(staging)
        try:
            reply = await self._run("APPEND", key, keys, args, durable=True)
        finally:
            if staging is not None:
                await self._discard(staging)
        _refuse_path(key, reply[0])
        if reply[0] == lua.CONFLICT:
            raise TooLarge(f"appending would exceed {self._limit} bytes", key=key)
        return ObjectMeta(
            key=key,
            size=int(reply[1]),
            etag=etag,
            content_type=_text(reply[3]) if len(reply) > 3 else None,
            last_modified=float(reply[2]),
        )

    async def rename(self, source: str, target: str) -> ObjectMeta:
        await self._settle()
        reply = await self._run(
            "RENAME",
            source,
            [*self._keys(source), *self._keys(target), self._index, *self._ancestor_metas(target)],
            [idempotency.new_etag(), self._root, source, target, _record_window()],
            durable=True,
        )
        if reply is None:
            raise NotFound(f"no object at {source!r}", key=source)
        if isinstance(reply, int):
            _refuse_path(target, reply)
        return _meta(target, reply)

    async def delete(self, key: str, *, condition: WriteCondition = UNCONDITIONAL) -> None:
        await self._settle()
        request_id = idempotency.current() or ""
        status = await self._script(
            "DELETE",
            key,
            [
                *self._keys(key),
                self._index,
                self._data(key) + lua.REQUEST_INFIX + request_id.encode(),
            ],
            [condition.if_match or "", key, request_id, _record_window()],
            durable=True,
        )
        if status == lua.CONFLICT:
            raise Conflict(f"{key!r} changed since it was read", key=key)
        if status == lua.MISSING:
            raise NotFound(f"no object at {key!r}", key=key)

    # -- list -------------------------------------------------------------------

    async def list(
        self,
        prefix: str,
        *,
        delimiter: str | None = "/",
        page_token: str | None = None,
        limit: int = 1000,
    ) -> ListPage:
        start = b""
        if page_token:
            # Past the token; past every name under it when it is a rolled-up prefix.
            start = b"(" + page_token.encode("utf-8")
            if delimiter and page_token.endswith(delimiter):
                start += b"\xff"
        await self._settle()
        reply = await self._run_reading(
            "LIST",
            prefix or None,
            [self._index],
            [self._root, prefix, start, limit, delimiter or ""],
        )
        token, count = _text(reply[1]), int(reply[2])
        entries = []
        for offset in range(3, 3 + 5 * count, 5):
            name, etag, size, content_type, mtime = reply[offset : offset + 5]
            entries.append(_meta(_text(name) or "", [etag, size, content_type, mtime]))
        prefixes = [_text(raw) or "" for raw in reply[3 + 5 * count :]]
        return ListPage(entries, prefixes, token or None)

    async def rebuild_index(self) -> int:
        """Build the mount's name index again from its stored objects; the number of names.

        For objects written by something that does not keep the index (a
        connector from before it, during a rolling upgrade): creates wait
        while it runs, reads and overwrites go on.
        """
        await self._settle()
        with _redis_errors():
            return await self._indexer.rebuild()

    # -- attributes -------------------------------------------------------------

    async def get_xattrs(self, key: str) -> dict[str, str]:
        reply = await self._stat_reply(key)
        meta = _meta(key, reply)
        attrs = {"etag": meta.etag}
        if meta.content_type is not None:
            attrs["content_type"] = meta.content_type
        pttl = int(reply[4])
        # Round up: a key that still exists has at least a second left.
        attrs["ttl"] = "-1" if pttl < 0 else str(-(-pttl // 1000))
        return attrs

    async def set_xattr(self, key: str, name: str, value: str) -> None:
        await self._settle()
        if name == "ttl":
            done = await self._script(
                "EXPIRE",
                key,
                [*self._keys(key), self._index],
                [_parse_ttl(value, key), key],
                durable=True,
            )
        else:
            done = await self._script("SET_TYPE", key, [self._keys(key)[1]], [value], durable=True)
        if not done:
            raise NotFound(f"no object at {key!r}", key=key)

    async def remove_xattr(self, key: str, name: str) -> None:
        await self.set_xattr(key, name, "-1" if name == "ttl" else "")


def _record_window() -> int:
    """Milliseconds a script keeps the record of the request being served; 0 without an id."""
    return idempotency.RECORD_SECONDS * 1000 if idempotency.current() is not None else 0
