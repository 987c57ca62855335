"""``nats-kv-buffered-cas``: objects in a NATS JetStream key-value bucket, revision CAS.

Owns: the NATS connector — configuration, the connection (made on first use
and made again after the client gives up on a lost server), the bucket
(created when missing unless disabled), reads, conditional writes, listing,
TTL. Key encoding lives in ``nats_kv.key_encoding``; message headers, entries and the
NATS error table in ``nats_kv.messages``.

- One object is one message on the bucket's subject ``$KV.<bucket>.<key>``
  (the layout every NATS KV client reads). Its revision, and so its etag, is
  the stream sequence. The content type travels in the ``Asya-Content-Type``
  header, the modification time is the message time stamp.
- Compare-and-swap: a conditional write publishes with
  ``Nats-Expected-Last-Subject-Sequence`` set to the revision the writer read,
  so JetStream itself refuses a stale writer (409). Create-only expects no
  message (or the delete marker that is there). A conditional delete on a
  stale revision is a 409 too. Deleting publishes a conditional delete
  marker and then purges it, so deleted keys leave nothing behind.
- Values are one message: the limit is the server's ``max_payload`` (minus
  room for headers), the bucket's maximum value size and
  ``NATS_MAX_VALUE_BYTES``, whichever is smallest; larger bodies get 413
  before anything is sent. To store bigger values raise ``max_payload`` in
  the nats-server configuration (1 MiB by default, at most 64 MiB).
- TTL: with per-message TTL (nats-server 2.11+, a bucket that allows it;
  buckets this connector creates do) ``user.asya.ttl`` sets and reads the
  seconds left (-1: none). Changing it, like changing the content type,
  rewrites the entry with a new revision. An overwrite keeps the expiry the
  entry had. Without per-message TTL the attribute is read-only and reports
  the bucket's max age. Expired entries and delete markers are absent.
- Rename is copy then delete: NATS KV has no multi-key transaction.
- Files and directories: a write that may create a key first looks at its
  ancestors and below it, at once and beside the read of the current entry;
  without a multi-key transaction a concurrent creator can still race it.
  The ``os.path`` predicates are one batched direct get of the last message
  on the key's subject and below it (nats-server 2.11+; two gets at once on
  older servers).
- Cost: reads, directory checks and listings select subjects with filters
  (the key's own subject, ``a.b.>`` below a directory), which JetStream
  resolves in its subject index: other keys in the bucket do not add to
  them. A listing delivers every entry below its prefix, subdirectories'
  entries included, and rolls them up here.

- A replicated bucket (a cluster): reads, checks and the idempotency
  lookups go to the stream leader (the message get API), not to direct gets
  any replica answers: a replica applies writes after they are
  acknowledged, and after a failover one answered with the previous
  revision. Requests wait out a failover (a lost server, an election) for
  ``NATS_FAILOVER_SECONDS``; a publish sent again then carries the same
  ``Nats-Msg-Id``, so the stream stores it once. A single server's outage
  is answered at once (503).

Environment: ``NATS_URL`` (required; comma-separated for a cluster),
``NATS_KV_BUCKET`` (default ``asya-state``), ``NATS_KV_CREATE_BUCKET``
(default true), ``NATS_KV_REPLICAS`` and ``NATS_KV_STORAGE`` (``file`` or
``memory``) for a created bucket, ``NATS_CREDS`` (a credentials file) or
``NATS_USER``/``NATS_PASSWORD`` or ``NATS_TOKEN``, ``NATS_TIMEOUT_SECONDS``
(default 5), ``NATS_FAILOVER_SECONDS`` (default 15; 0: never wait),
``NATS_MAX_VALUE_BYTES``, ``STATE_PREFIX``.

Idempotent retries: every value and delete marker carries its request's
``Asya-Request-Id`` header and, in ``Asya-Recent-Requests``, the ids,
revisions and sizes of the seven messages before it on the key (read with
the previous entry that a write looks at anyway; exact for conditional
writes, which the server checks against that entry). A retried write,
create or rename (copy, then delete) whose first attempt was applied finds
its id there and succeeds with its own revision, also when other writers
have replaced the value since. Where the bucket allows per-message TTL
(buckets this connector creates do), every write, create, rename and delete
of a request with an id also stores a record of it: a message on
``.asya-tmp-requests/<id>/<kind>`` (outside every mount's keys; its data
``<kind> <revision> <size> <key>``) that expires after
``idempotency.RECORD_SECONDS``, so a retry is recognised for that long
whatever the key saw since, and a delete keeps its marker as long. Where
the bucket also takes atomic batches (``allow_atomic``, nats-server 2.12+;
the connector turns it on for buckets it creates) the value and its record
are one batch, stored together or not at all (the record then says ``-``
for the revision: its own sequence minus one). Elsewhere the record is
published after the value, and a connector killed between the two leaves
the list to recognise the retry. Without per-message TTL only the list
recognises retries, and a retried delete reports 404 once the marker is
purged.

Must not: write without a revision check where the caller gave one, or
report a key whose stored name it cannot decode.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors as nx
import nats.js.errors as jx
from nats.js import api

from ... import idempotency
from ...errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    ConfigError,
    Conflict,
    ConnectorError,
    NotFound,
    TooLarge,
    Unsupported,
)
from ...interface import (
    UNCONDITIONAL,
    Capability,
    Connector,
    Kind,
    ListPage,
    ObjectMeta,
    RangeSpec,
    ReadStream,
    WriteCondition,
    check_content_type,
)
from ...keys import RESERVED_SEGMENT_PREFIX
from ...listing import paginate
from ...settings import Settings
from .key_encoding import decode_key, encode_key, prefix_filter
from .messages import (
    CONTENT_TYPE,
    KV_OPERATION,
    MSG_TTL,
    Entry,
    header,
    is_absent,
    map_nats_error,
)

log = logging.getLogger("asya_state_connectors.nats_kv")

EXPECTED_LAST = "Nats-Expected-Last-Subject-Sequence"
BATCH_ID = "Nats-Batch-Id"
BATCH_SEQUENCE = "Nats-Batch-Sequence"
BATCH_COMMIT = "Nats-Batch-Commit"
# Where request records live, outside every mount's keys (no key has a
# segment with the reserved prefix).
RECORDS_DIR = RESERVED_SEGMENT_PREFIX + "requests"
# The key's earlier messages (idempotency.remember), so a retry is recognised
# after other writes followed its own.
RECENT_REQUESTS = "Asya-Recent-Requests"
MSG_SIZE = "Nats-Msg-Size"
# Headers count against max_payload; a content type (at most 1024 characters) fits well below this.
HEADER_ROOM = 2048
# JetStream error codes for a failed Nats-Expected-Last-Subject-Sequence check.
WRONG_LAST_SEQUENCE = frozenset({10071, 10164})
STREAM_NAME_IN_USE = 10058
# A publish with the Nats-Msg-Id of one the stream is still storing.
DUPLICATE_IN_PROCESS = 10158
MSG_ID = "Nats-Msg-Id"
# Between attempts through a failover (seconds): doubling up to the cap.
FAILOVER_FIRST_DELAY = 0.1
FAILOVER_MAX_DELAY = 1.0
# A failed connect is not retried for this long: requests fail fast meanwhile.
RECONNECT_COOLDOWN = 1.0
RECONNECT_WAIT = 0.25
# Attempts after a lost connection before the client closes; the next request
# then connects afresh.
RECONNECT_ATTEMPTS = 3
CHUNK = 256 * 1024
_BUCKET_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
T = TypeVar("T")


def _without_credentials(url: str) -> str:
    """``url`` without a user and password, for error messages."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


@dataclass(frozen=True, slots=True)
class _Found:
    subject: str
    entry: Entry


class _NoBatchedGets(Exception):
    """The server does not answer batched direct gets (before nats-server 2.11)."""


@dataclass(slots=True)
class _Session:
    nc: Any
    js: Any
    direct: bool  # reads are direct gets (any replica may answer: one replica only)
    replicated: bool  # more than one replica: a stream leader can fail over
    max_age: float | None
    msg_ttl: bool
    limit: int
    # The bucket takes atomic batches (nats-server 2.12+, allow_atomic): a
    # value and its request record are stored together or not at all.
    atomic: bool = False


class NatsKvBufferedCas(Connector):
    name = "nats-kv-buffered-cas"
    capabilities = frozenset(
        {Capability.CAS, Capability.CREATE_ONLY, Capability.TTL, Capability.LAST_MODIFIED}
    )
    writable_xattrs = frozenset({"ttl", "content_type"})
    idempotent_retries = frozenset({"write", "create", "rename", "delete", "replaced"})

    def __init__(
        self,
        servers: list[str],
        bucket: str,
        prefix: str,
        *,
        create_bucket: bool,
        replicas: int,
        memory_storage: bool,
        auth: dict[str, str],
        timeout: float,
        max_value: int | None,
        failover: float = 15.0,
    ) -> None:
        self._servers = servers
        self._bucket = bucket
        self._stream = f"KV_{bucket}"
        self._subject_root = f"$KV.{bucket}."
        self._prefix = prefix
        self._create_bucket = create_bucket
        self._replicas = replicas
        self._memory_storage = memory_storage
        self._auth = auth
        self._timeout = timeout
        self._failover_seconds = failover
        self._max_value = max_value
        # Until the server tells us its max_payload, assume its default (1 MiB).
        self.max_object_size = min(max_value or 1 << 20, (1 << 20) - HEADER_ROOM)
        self._session: _Session | None = None
        self._connecting = asyncio.Lock()
        self._failed_at = 0.0
        self._unusable: ConnectorError | None = None  # why the last connect failed
        self._last_error = ""  # the client's last complaint (refusals arrive only there)
        self._violations = 0
        self._inflight: set[asyncio.Timeout] = set()
        # Set when the client reconnected or gave up (_connection waits on it).
        self._settled = asyncio.Event()
        self._batched_gets = True  # until the server says it has none

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        url = settings.required("NATS_URL", hint="e.g. nats://nats:4222")
        servers = [u.strip() for u in url.split(",") if u.strip()]
        for server in servers:
            scheme = server.partition("://")[0].lower() if "://" in server else ""
            if scheme not in ("nats", "tls", "ws", "wss"):
                raise ConfigError(
                    f"NATS_URL entries must start with nats://, tls://, ws:// or wss://, got {server!r}"
                )
        bucket = settings.optional("NATS_KV_BUCKET", "asya-state") or "asya-state"
        if not _BUCKET_NAME.match(bucket):
            raise ConfigError(
                f"NATS_KV_BUCKET may contain only letters, digits, '-' and '_', got {bucket!r}"
            )
        storage = (settings.optional("NATS_KV_STORAGE", "file") or "file").lower()
        if storage not in ("file", "memory"):
            raise ConfigError(f"NATS_KV_STORAGE must be file or memory, got {storage!r}")
        auth: dict[str, str] = {}
        creds = settings.optional("NATS_CREDS")
        if creds is not None:
            auth["user_credentials"] = creds
        user = settings.optional("NATS_USER")
        if user is not None:
            auth["user"] = user
            auth["password"] = settings.required(
                "NATS_PASSWORD", hint="NATS_USER is set, so a password is needed"
            )
        token = settings.optional("NATS_TOKEN")
        if token is not None:
            auth["token"] = token
        return cls(
            servers,
            bucket,
            settings.prefix,
            create_bucket=settings.flag("NATS_KV_CREATE_BUCKET", True),
            replicas=settings.integer("NATS_KV_REPLICAS", 1, minimum=1),
            memory_storage=storage == "memory",
            auth=auth,
            timeout=settings.number("NATS_TIMEOUT_SECONDS", 5.0, minimum=0.1),
            failover=settings.number("NATS_FAILOVER_SECONDS", 15.0),
            max_value=settings.integer("NATS_MAX_VALUE_BYTES", 0, minimum=0) or None,
        )

    # -- connection -----------------------------------------------------------

    async def open(self) -> None:
        # A sidecar may start before NATS (or before its account or bucket is
        # ready): serve anyway; readiness reports the problem until it is solved.
        try:
            await self._connection(wait=False)
        except ConnectorError as exc:
            log.warning("NATS is not usable yet: %s", exc.message)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(nx.Error, OSError, TimeoutError):
                await session.nc.close()

    async def check_health(self) -> None:
        session = await self._connection(wait=False)  # readiness answers now
        async with self._errors(None):
            await session.js.stream_info(self._stream)

    async def _connection(self, *, wait: bool = True) -> _Session:
        """The session, connecting if needed; ``wait``: through a cluster's failover (bounded)."""
        session = self._session
        if session is not None and session.nc.is_connected:
            return session
        if session is not None and not session.nc.is_closed:
            # The client is moving to another server: in a cluster that takes
            # well under a second, so wait for it (bounded) instead of failing.
            deadline = time.monotonic() + (
                self._failover_seconds if wait and session.replicated else 0
            )
            while not (session.nc.is_connected or session.nc.is_closed):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # Looked at again at least every RECONNECT_WAIT: a callback
                # may have come between the look and the clear.
                self._settled.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, RECONNECT_WAIT)):
                        await self._settled.wait()
            if session.nc.is_connected:
                return session
            if not session.nc.is_closed:
                raise BackendUnavailable("the connection to NATS was lost; reconnecting")
        async with self._connecting:
            if self._session is not None and self._session.nc.is_connected:
                return self._session
            # A cluster may be electing a leader, or the servers tried first
            # may be the ones down: keep trying for the failover time.
            clustered = len(self._servers) > 1 or self._replicas > 1
            deadline = time.monotonic() + (self._failover_seconds if wait and clustered else 0)
            failure = self._unusable
            cooling = RECONNECT_COOLDOWN - (time.monotonic() - self._failed_at)
            if failure is not None and cooling > 0:
                if time.monotonic() + cooling > deadline:
                    raise type(failure)(f"{failure.message} (retrying shortly)")
                await asyncio.sleep(cooling)
            while True:
                self._last_error = ""
                try:
                    self._session = await self._connect()
                    break
                except (BackendUnavailable, BackendTimeout) as exc:
                    if time.monotonic() + RECONNECT_COOLDOWN > deadline:
                        raise self._failed(exc) from exc
                    log.info("NATS is not usable yet (%s); trying again", exc.message)
                except ConnectorError as exc:
                    raise self._failed(exc) from exc
                await asyncio.sleep(RECONNECT_COOLDOWN)
            self._unusable = None
            return self._session

    def _failed(self, exc: ConnectorError) -> ConnectorError:
        self._failed_at = time.monotonic()
        self._unusable = self._explained(exc)
        return self._unusable

    def _explained(self, exc: ConnectorError) -> ConnectorError:
        """A failed connect, naming the servers tried and the client's last complaint."""
        servers = ", ".join(_without_credentials(s) for s in self._servers)
        cause = f": {self._last_error}" if self._last_error else ""
        return type(exc)(f"{exc.message} (NATS_URL {servers}{cause})")

    async def _connect(self) -> _Session:
        nc = None
        try:
            async with self._errors(None):
                nc = await nats.connect(
                    servers=self._servers,
                    name=f"asya-state {self.name}",
                    connect_timeout=max(1, round(self._timeout)),
                    reconnect_time_wait=RECONNECT_WAIT,
                    max_reconnect_attempts=RECONNECT_ATTEMPTS,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    closed_cb=self._on_closed,
                    **self._auth,
                )
                js = nc.jetstream(timeout=self._timeout)
                info = await self._bucket_info(js)
            config = info.config
            limit = nc.max_payload - HEADER_ROOM
            for bound in (config.max_msg_size, self._max_value):
                if bound is not None and bound > 0:
                    limit = min(limit, bound)
            self.max_object_size = limit
            msg_ttl = bool(config.allow_msg_ttl)
            # Per-key TTL depends on the server and the bucket, known only now.
            self.capabilities = type(self).capabilities - (  # type: ignore[misc]
                set() if msg_ttl else {Capability.TTL}
            )
            return _Session(
                nc=nc,
                js=js,
                # A replica answers a direct get from what it has applied,
                # which after a failover lagged acknowledged writes: a
                # replicated bucket is read from its stream leader.
                direct=bool(config.allow_direct) and (config.num_replicas or 1) == 1,
                replicated=(config.num_replicas or 1) > 1,
                max_age=config.max_age or None,
                msg_ttl=msg_ttl,
                limit=limit,
                atomic=msg_ttl and bool(getattr(config, "allow_atomic", False)),
            )
        except BaseException:
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()
            raise

    async def _bucket_info(self, js: Any) -> Any:
        try:
            return await js.stream_info(self._stream)
        except jx.NotFoundError:
            if not self._create_bucket:
                raise BackendError(
                    f"NATS KV bucket {self._bucket!r} does not exist and NATS_KV_CREATE_BUCKET is false"
                ) from None
        try:
            await js.create_key_value(
                api.KeyValueConfig(
                    bucket=self._bucket,
                    history=1,
                    direct=True,
                    replicas=self._replicas,
                    storage=api.StorageType.MEMORY
                    if self._memory_storage
                    else api.StorageType.FILE,
                )
            )
        except jx.APIError as exc:
            # Another connector created it first.
            if exc.err_code != STREAM_NAME_IN_USE:
                raise
        log.info("created NATS KV bucket %s", self._bucket)
        info = await js.stream_info(self._stream)
        if not getattr(info.config, "allow_atomic", False):
            # A value and its request record in one atomic batch (see _send);
            # a server before 2.12 refuses it, and records follow values instead.
            info.config.allow_atomic = True
            try:
                await js.update_stream(info.config)
            except (jx.APIError, nx.Error) as exc:
                log.info("NATS KV bucket %s takes no atomic batches: %s", self._bucket, exc)
            info = await js.stream_info(self._stream)
        return info

    async def _on_error(self, exc: Exception) -> None:
        # The client reports refusals only here: a denied publish then times
        # out, a refused login ends as "no servers available".
        self._last_error = str(exc) or type(exc).__name__
        text = str(exc).lower()
        if "permissions violation" in text or "authorization violation" in text:
            self._violations += 1
        log.warning("NATS: %s", exc)

    async def _on_disconnected(self) -> None:
        if self._session is None:
            return  # close() let go of the connection on purpose
        log.warning("disconnected from NATS")
        # Requests already sent will get no answer: end them now (as 503).
        now = asyncio.get_running_loop().time()
        for deadline in list(self._inflight):
            deadline.reschedule(now)

    async def _on_reconnected(self) -> None:
        log.info("reconnected to NATS")
        self._settled.set()

    async def _on_closed(self) -> None:
        self._settled.set()  # given up: the next request connects afresh

    @contextlib.asynccontextmanager
    async def _errors(self, key: str | None) -> AsyncIterator[None]:
        """Map client errors; a lost connection ends the call at once instead of at its timeout."""
        seen = self._violations
        try:
            async with asyncio.timeout(None) as deadline:
                self._inflight.add(deadline)
                try:
                    yield
                finally:
                    self._inflight.discard(deadline)
        except ConnectorError:
            raise
        except (TimeoutError, nx.Error, OSError) as exc:
            session = self._session
            raise map_nats_error(
                exc,
                key,
                denied=self._violations != seen,
                connected=session is not None and session.nc.is_connected,
            ) from exc

    # -- messages -------------------------------------------------------------

    def _subject(self, key: str) -> str:
        return self._subject_root + encode_key(self._prefix + key)

    async def _latest(self, session: _Session, key: str) -> Entry | None:
        """The last message on ``key``'s subject, live or a marker; None if there is none."""
        msg = await self._get(session, key, subject=self._subject(key))
        if msg is None:
            return None
        stamp = msg.time.timestamp() if msg.time is not None else time.time()
        return Entry(int(msg.seq), msg.data or b"", msg.headers or {}, stamp)

    async def _get(self, session: _Session, key: str, **request: Any) -> Any:
        """One message get (direct, or from the stream leader), through a failover; None if none."""

        async def once(current: _Session) -> Any:
            async with self._errors(key):
                try:
                    return await current.js.get_msg(self._stream, direct=current.direct, **request)
                except jx.NotFoundError:
                    return None

        return await self._failover(session, once)

    async def _failover(self, session: _Session, attempt: Callable[[_Session], Awaitable[T]]) -> T:
        """``attempt``, made again while a replicated bucket fails over, for ``NATS_FAILOVER_SECONDS``.

        A killed server costs its clients the connection (the client moves to
        another server) and, if it led the stream, an election of about five
        seconds during which JetStream answers nothing. Without this, every
        request meanwhile would end as 503 or 504 and the runtime, whose
        retries last five seconds, would hand the handler an error; with it a
        request waits for the new leader. Every attempt may be repeated: gets
        read, and a publish carries a ``Nats-Msg-Id`` that makes the stream
        answer a copy of a message it already stored with that message's
        sequence instead of storing it twice. A single server's outage is
        answered at once (nothing there fails over).
        """
        deadline = time.monotonic() + self._failover_seconds
        delay = FAILOVER_FIRST_DELAY
        while True:
            try:
                return await attempt(session)
            except (BackendUnavailable, BackendTimeout) as exc:
                if not session.replicated or time.monotonic() + delay > deadline:
                    raise
                log.info("NATS is failing over (%s); trying again", exc.message)
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, FAILOVER_MAX_DELAY)
                try:
                    session = await self._connection()
                    break
                except BackendUnavailable:
                    if time.monotonic() + delay > deadline:
                        raise

    async def _live(self, session: _Session, key: str) -> Entry:
        entry = await self._latest(session, key)
        if entry is None or not entry.live:
            raise NotFound(f"no object at {key!r}", key=key)
        return entry

    async def _publish(
        self,
        session: _Session,
        key: str,
        data: bytes,
        *,
        expected: int | None,
        content_type: str | None,
        ttl: float | None,
        previous: Entry | None,
    ) -> int:
        """Publish a value; ``expected`` is the subject's last sequence (0: none). Conflict if not.

        ``previous`` is the key's last message as read before, whose writers are carried forward.
        """
        headers: dict[str, str] = {}
        if expected is not None:
            headers[EXPECTED_LAST] = str(expected)
        if content_type:
            headers[CONTENT_TYPE] = content_type
        if ttl is not None:
            headers[MSG_TTL] = "never" if ttl < 0 else str(max(1, int(-(-ttl // 1))))
        return await self._send(session, key, data, headers, previous)

    def _record_subject(self, request_id: str, kind: str) -> str:
        # One per kind: a rename (a copy, then a delete) makes both under one id.
        return self._subject_root + encode_key(f"{RECORDS_DIR}/{request_id}/{kind}")

    async def _record(
        self, session: _Session, kind: str, key: str, seq: int | str, size: int
    ) -> None:
        """Record, after the change, what the request being served did (see the module doc).

        For a bucket without atomic batches (``_send_recorded`` is the rule),
        and only where messages can expire. The change is applied already: a
        record that cannot be published is logged, not reported as a failure.
        """
        request_id = idempotency.current()
        if request_id is None or not session.msg_ttl:
            return
        try:
            await session.js.publish(
                self._record_subject(request_id, kind),
                f"{kind} {seq} {size} {self._prefix}{key}".encode(),
                headers={MSG_TTL: str(idempotency.RECORD_SECONDS)},
            )
        except (nx.Error, OSError, TimeoutError) as exc:
            log.warning("could not record request %s on %r: %s", request_id, key, exc)

    async def _recorded(self, key: str, request_id: str, kind: str) -> tuple[str, str, int] | None:
        """(kind, revision, size) ``request_id`` recorded (a write: w, a delete: d) at ``key``."""
        session = await self._connection()
        if not session.msg_ttl:
            return None
        async with self._errors(key):
            try:
                msg = await session.js.get_msg(
                    self._stream,
                    subject=self._record_subject(request_id, kind),
                    direct=session.direct,
                )
            except jx.NotFoundError:
                return None
        kind, seq, size, name = [
            *(msg.data or b"").decode("utf-8", "replace").split(" ", 3),
            "",
            "",
            "",
        ][:4]
        made = msg.time.timestamp() if msg.time is not None else time.time()
        if (
            name != self._prefix + key
            or not size.isdigit()
            or idempotency.expired(made, time.time())
        ):
            return None
        if seq == "-":  # stored in one batch with the value, right after it
            seq = str(int(msg.seq) - 1)
        return kind, seq, int(size)

    async def _send(
        self,
        session: _Session,
        key: str,
        data: bytes,
        headers: dict[str, str],
        previous: Entry | None,
    ) -> int:
        """Publish to ``key``'s subject; a failed expected-sequence check is a Conflict."""
        request_id = idempotency.current()
        if request_id is not None:
            headers[idempotency.HEADER] = request_id
        if previous is not None:
            recent = idempotency.remember(
                header(previous.headers, RECENT_REQUESTS),
                header(previous.headers, idempotency.HEADER),
                str(previous.seq),
                len(previous.data),
            )
            if recent is not None:
                headers[RECENT_REQUESTS] = recent
        if request_id is not None and session.atomic:
            # The batch's own record recognises a copy re-sent after a
            # failover (a Conflict the server checks against the record).
            return await self._failover(
                session, lambda current: self._send_recorded(current, key, data, headers)
            )
        if session.replicated:
            # What lets _failover publish again: the stream drops a copy.
            headers[MSG_ID] = uuid.uuid4().hex

        async def once(current: _Session) -> int:
            async with self._errors(key):
                try:
                    ack = await current.js.publish(
                        self._subject(key), data, headers=headers or None
                    )
                except jx.APIError as exc:
                    if exc.err_code in WRONG_LAST_SEQUENCE:
                        raise Conflict(f"{key!r} changed since it was read", key=key) from None
                    if exc.err_code == DUPLICATE_IN_PROCESS:
                        raise BackendUnavailable(
                            f"NATS is still storing an earlier attempt at {key!r}", key=key
                        ) from None
                    raise
            seq = int(ack.seq)
            kind = "d" if headers.get(KV_OPERATION) else "w"
            await self._record(current, kind, key, seq, len(data))
            return seq

        return await self._failover(session, once)

    async def _send_recorded(
        self, session: _Session, key: str, data: bytes, headers: dict[str, str]
    ) -> int:
        """Publish a value (or marker) and its request record as one atomic batch.

        The record is the batch's second message, so it is stored right after
        the value or, when the value's expected sequence fails, not at all: a
        connector killed at any instant never leaves a change without its
        record. The value's revision is the record's sequence minus one.
        """
        request_id = idempotency.current()
        assert request_id is not None
        kind = "d" if headers.get(KV_OPERATION) else "w"
        batch = uuid.uuid4().hex
        record = f"{kind} - {len(data)} {self._prefix}{key}".encode()
        async with self._errors(key):
            await session.nc.publish(
                self._subject(key),
                data,
                headers={**headers, BATCH_ID: batch, BATCH_SEQUENCE: "1"},
            )
            reply = await session.nc.request(
                self._record_subject(request_id, kind),
                record,
                timeout=self._timeout,
                headers={
                    BATCH_ID: batch,
                    BATCH_SEQUENCE: "2",
                    BATCH_COMMIT: "1",
                    MSG_TTL: str(idempotency.RECORD_SECONDS),
                },
            )
            answer = json.loads(reply.data or b"{}")
            error = answer.get("error")
            if error:
                if error.get("err_code") in WRONG_LAST_SEQUENCE:
                    raise Conflict(f"{key!r} changed since it was read", key=key)
                raise jx.APIError.from_error(error)
        return int(answer["seq"]) - 1

    def _carried_ttl(self, session: _Session, entry: Entry | None) -> float | None:
        """The TTL an overwrite of ``entry`` keeps: seconds left, -1 for never, None for none set."""
        if entry is None or not entry.live or not session.msg_ttl:
            return None
        raw = header(entry.headers, MSG_TTL)
        if raw is None:
            return None
        expires = entry.expires_at(session.max_age)
        return -1.0 if expires is None else max(1.0, expires - time.time())

    async def _has_objects_below(self, key: str) -> bool:
        """The first message on any subject below ``key``: one request, not a consumer.

        Only live values count; a delete marker a purge left behind is skipped.
        """
        session = await self._connection()
        subjects = self._subject_root + prefix_filter(self._prefix + key + "/")
        seq = 1
        while True:
            msg = await self._get(session, key, seq=seq, subject=subjects, next=True)
            if msg is None:
                return False
            if not is_absent(msg.headers):
                return True
            seq = int(msg.seq) + 1

    # -- stat and read ----------------------------------------------------------

    async def stat(self, key: str) -> ObjectMeta:
        session = await self._connection()
        return (await self._live(session, key)).meta(key)

    async def read(self, key: str, byte_range: RangeSpec | None = None) -> ReadStream:
        session = await self._connection()
        entry = await self._live(session, key)
        meta = entry.meta(key)
        start, length = (0, meta.size) if byte_range is None else byte_range.resolve(meta.size, key)
        view = memoryview(entry.data)[start : start + length]

        async def chunks() -> AsyncIterator[bytes]:
            for offset in range(0, len(view), CHUNK):
                yield bytes(view[offset : offset + CHUNK])

        return ReadStream(meta, start, length, chunks())

    async def probe(self, key: str) -> ObjectMeta | Kind:
        """One batched direct get of the last message on the key's subject and below it.

        The server answers with the earliest of those messages: the key's own
        (a file), one below it (a directory) or none (nothing there): one
        request, as a plain get would be. A delete marker in the answer, or
        a server without batched gets (before 2.11), takes the two
        questions asked apart, at once.
        """
        session = await self._connection()
        if session.direct and self._batched_gets:
            try:
                first = await self._first_at_or_below(session, key)
            except _NoBatchedGets as exc:
                log.info("%s; probes ask two questions", exc)
                self._batched_gets = False
            else:
                if first is None:
                    return Kind.MISSING
                if first.entry.live:
                    if first.subject == self._subject(key):
                        return first.entry.meta(key)
                    return Kind.DIRECTORY
        entry, below = await asyncio.gather(
            self._latest(session, key), self._has_objects_below(key)
        )
        if entry is not None and entry.live:
            return entry.meta(key)
        return Kind.DIRECTORY if below else Kind.MISSING

    async def _first_at_or_below(self, session: _Session, key: str) -> _Found | None:
        """The earliest last message on ``key``'s subject or below it; None if there is none."""
        subject = self._subject(key)
        request = json.dumps({"multi_last": [subject, subject + ".>"], "batch": 1})
        async with self._errors(key):
            reply = await session.nc.request(
                f"$JS.API.DIRECT.GET.{self._stream}", request.encode(), timeout=self._timeout
            )
        headers = reply.headers or {}
        status = headers.get("Status")
        if status == "404":
            return None
        if status is not None or "Nats-Subject" not in headers:
            raise _NoBatchedGets(f"NATS answered a batched direct get with status {status}")
        stamp = headers.get("Nats-Time-Stamp")
        when = api.Base._parse_utc_iso(stamp).timestamp() if stamp else time.time()
        entry = Entry(int(headers["Nats-Sequence"]), reply.data or b"", headers, when)
        return _Found(headers["Nats-Subject"], entry)

    # -- write ------------------------------------------------------------------

    async def _collect(
        self, session: _Session, key: str, body: AsyncIterator[bytes], size: int | None
    ) -> bytes:
        if size is not None and size > session.limit:
            raise TooLarge(self._too_large(session), key=key)
        data = bytearray()
        async for chunk in body:
            data += chunk
            if len(data) > session.limit:
                raise TooLarge(self._too_large(session), key=key)
        return bytes(data)

    def _too_large(self, session: _Session) -> str:
        return (
            f"the value exceeds {session.limit} bytes, the largest this NATS server accepts"
            " (raise max_payload in the nats-server configuration for more)"
        )

    async def write(
        self,
        key: str,
        body: AsyncIterator[bytes],
        *,
        size: int | None = None,
        condition: WriteCondition = UNCONDITIONAL,
        content_type: str | None = None,
    ) -> ObjectMeta:
        check_content_type(content_type, key=key)
        session = await self._connection()
        data = await self._collect(session, key, body, size)
        if condition.if_none_match:
            await self.check_path(key)
            seq = await self._create(session, key, data, content_type)
        else:
            if condition.if_match is None:
                # Looked at beside the current entry: the answer matters only
                # when there is none (an existing object is never a directory).
                current, conflict = await asyncio.gather(
                    self._latest(session, key), self.path_conflict(key)
                )
                if conflict is not None and (current is None or not current.live):
                    raise conflict
            else:
                current = await self._latest(session, key)
            expected = None  # unconditional: the last writer wins
            if condition.if_match is not None:
                if current is None or not current.live or str(current.seq) != condition.if_match:
                    raise Conflict(f"{key!r} changed since it was read", key=key)
                expected = current.seq
            seq = await self._publish(
                session,
                key,
                data,
                expected=expected,
                content_type=content_type,
                ttl=self._carried_ttl(session, current),
                previous=current,
            )
        return ObjectMeta(
            key=key,
            size=len(data),
            etag=str(seq),
            content_type=content_type or None,
            last_modified=time.time(),
        )

    async def applied_write(self, key: str, request_id: str) -> ObjectMeta | None:
        session = await self._connection()
        entry = await self._latest(session, key)
        if entry is not None:
            if entry.live and header(entry.headers, idempotency.HEADER) == request_id:
                return entry.meta(key)
            # Replaced (or deleted) since: the write happened, with its own revision.
            written = idempotency.find(header(entry.headers, RECENT_REQUESTS), request_id)
            if written is not None:
                etag, size = written
                return ObjectMeta(key=key, size=size, etag=etag)
        record = await self._recorded(key, request_id, "w")
        if record is None or record[0] != "w":
            return None
        if entry is not None and entry.live and str(entry.seq) == record[1]:
            return entry.meta(key)
        return ObjectMeta(key=key, size=record[2], etag=record[1])

    async def applied_delete(self, key: str, request_id: str) -> bool:
        session = await self._connection()
        entry = await self._latest(session, key)
        if entry is not None:
            if header(entry.headers, idempotency.HEADER) == request_id:
                return not entry.live
            if idempotency.find(header(entry.headers, RECENT_REQUESTS), request_id) is not None:
                return True
        record = await self._recorded(key, request_id, "d")
        return record is not None and record[0] == "d"

    async def _create(
        self, session: _Session, key: str, data: bytes, content_type: str | None
    ) -> int:
        try:
            return await self._publish(
                session, key, data, expected=0, content_type=content_type, ttl=None, previous=None
            )
        except Conflict:
            pass
        # Something is on the subject: a live value, or a marker left by a delete.
        current = await self._latest(session, key)
        if current is not None and current.live:
            raise Conflict(f"{key!r} already exists", key=key)
        try:
            return await self._publish(
                session,
                key,
                data,
                expected=0 if current is None else current.seq,
                content_type=content_type,
                ttl=None,
                previous=current,
            )
        except Conflict:
            raise Conflict(f"{key!r} already exists", key=key) from None

    async def delete(self, key: str, *, condition: WriteCondition = UNCONDITIONAL) -> None:
        session = await self._connection()
        current = await self._latest(session, key)
        if current is None or not current.live:
            if condition.if_match is not None:
                raise Conflict(f"{key!r} changed since it was read", key=key)
            raise NotFound(f"no object at {key!r}", key=key)
        headers = {KV_OPERATION: "DEL"}
        if condition.if_match is not None:
            if str(current.seq) != condition.if_match:
                raise Conflict(f"{key!r} changed since it was read", key=key)
            headers[EXPECTED_LAST] = condition.if_match
        # A marker that records a request lives on for its retry, then expires.
        keep = session.msg_ttl and idempotency.current() is not None
        if keep:
            headers[MSG_TTL] = str(idempotency.RECORD_SECONDS)
        marker = await self._send(session, key, b"", headers, current)
        # Drop what the marker replaced (and the marker itself unless kept):
        # anything written after it survives. A bucket that denies purging
        # keeps its markers, which read as absent.
        with contextlib.suppress(nx.Error, OSError, TimeoutError):
            await session.js.purge_stream(
                self._stream, subject=self._subject(key), seq=marker if keep else marker + 1
            )

    # -- list -------------------------------------------------------------------

    async def list(
        self,
        prefix: str,
        *,
        delimiter: str | None = "/",
        page_token: str | None = None,
        limit: int = 1000,
    ) -> ListPage:
        session = await self._connection()
        entries = await self._failover(session, lambda current: self._scan(current, prefix))
        return paginate(
            sorted(entries.items()),
            lambda item: item[0],
            lambda item: item[1],
            prefix,
            delimiter=delimiter,
            page_token=page_token,
            limit=limit,
        )

    async def _scan(self, session: _Session, prefix: str) -> dict[str, ObjectMeta]:
        """Metadata of every live key under ``prefix``, from headers only (values stay on the server)."""
        full = self._prefix + prefix
        found: dict[str, ObjectMeta] = {}
        async with self._errors(prefix or None):
            sub = await session.js.subscribe(
                self._subject_root + prefix_filter(full),
                ordered_consumer=True,
                deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
                headers_only=True,
            )
            try:
                info = await sub.consumer_info()
                # Messages may already be on their way: only nothing pending and
                # nothing delivered means an empty range.
                pending = info.num_pending or info.delivered.consumer_seq
                while pending:
                    msg = await sub.next_msg(timeout=self._timeout)
                    pending = msg.metadata.num_pending
                    headers = msg.headers or {}
                    if is_absent(headers):
                        continue
                    try:
                        name = decode_key(msg.subject[len(self._subject_root) :])
                    except ValueError:
                        continue  # written by something else, not in our encoding
                    if not name.startswith(full) or name.startswith(RECORDS_DIR):
                        continue
                    key = name[len(self._prefix) :]
                    entry = Entry(
                        msg.metadata.sequence.stream,
                        b"",
                        headers,
                        msg.metadata.timestamp.timestamp(),
                    )
                    found[key] = entry.meta(key, size=int(headers.get(MSG_SIZE, 0)))
            finally:
                with contextlib.suppress(nx.Error, OSError, TimeoutError):
                    await sub.unsubscribe()
        return found

    # -- attributes -------------------------------------------------------------

    async def get_xattrs(self, key: str) -> dict[str, str]:
        session = await self._connection()
        entry = await self._live(session, key)
        attrs = {"etag": str(entry.seq)}
        content_type = header(entry.headers, CONTENT_TYPE)
        if content_type:
            attrs["content_type"] = content_type
        expires = entry.expires_at(session.max_age)
        attrs["ttl"] = (
            "-1" if expires is None else str(max(0, int(-(-(expires - time.time()) // 1))))
        )
        return attrs

    async def set_xattr(self, key: str, name: str, value: str) -> None:
        session = await self._connection()
        entry = await self._live(session, key)
        content_type = header(entry.headers, CONTENT_TYPE)
        ttl = self._carried_ttl(session, entry)
        if name == "content_type":
            check_content_type(value, key=key, field="user.asya.content_type")
            content_type = value or None
        else:
            if not session.msg_ttl:
                raise Unsupported(
                    f"bucket {self._bucket!r} does not allow per-key TTL (needs nats-server 2.11+"
                    " and a bucket with allow_msg_ttl)",
                    key=key,
                )
            try:
                seconds = int(value.strip())
            except ValueError:
                raise BadRequest(
                    f"user.asya.ttl must be whole seconds (-1 for none), got {value!r}", key=key
                ) from None
            if seconds == 0:
                await self.delete(key, condition=WriteCondition(if_match=str(entry.seq)))
                return
            ttl = float(seconds) if seconds > 0 else -1.0
        await self._publish(
            session,
            key,
            entry.data,
            expected=entry.seq,
            content_type=content_type,
            ttl=ttl,
            previous=entry,
        )

    async def remove_xattr(self, key: str, name: str) -> None:
        await self.set_xattr(key, name, "-1" if name == "ttl" else "")
