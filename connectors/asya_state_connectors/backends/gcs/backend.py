"""The GCS connectors: ``gcs-buffered-lww`` and ``gcs-buffered-cas``.

Owns: the mapping of the connector interface onto one Cloud Storage bucket
under ``STATE_PREFIX`` (configuration and the error table are in
``gcs.api``, reads in ``gcs.read``, uploads in parts in ``gcs.upload``).

- Revisions are object generations (as strings). A conditional write sends
  ``if_generation_match`` with the generation the writer read, or 0 for
  create-only, and the new revision is the generation the upload itself
  returned, never a later reload that could see another writer's object.
- Writes stream: a body shorter than ``GCS_CHUNK_SIZE`` is one upload
  request carrying the precondition; a longer one is uploaded in parts, up
  to ``GCS_PARTS_IN_FLIGHT`` at once, as temporary objects composed into the
  target under the precondition (``gcs.upload``). Nothing is visible until
  the single request or the final compose succeeds.
- Reads are ranged media requests fanned out by ``gcs.read``: the first is
  small and its headers carry the generation, type and size (a small read
  is one round trip); the rest are pinned to that generation and fetched
  ahead of the reader.
- Deletes by a revision check it first and then delete with
  ``if_generation_match`` (GCS enforces it; the check gives emulators that
  ignore it the same answer). Copy and rename are server-side rewrites;
  rename deletes the source only at the generation it copied.
- Idempotent retries (``object_store.requests``): a write, create or rename
  stores its request id in the object's metadata (``asya-request``) with
  the upload, the final compose or the rewrite that makes it, and a delete
  leaves a short-lived record, so a retry after a lost reply gets the
  original outcome instead of a false 409 or 404.
- Listing is the objects list with prefix, delimiter and page tokens. The
  ``os.path`` predicates (``probe``) are one objects list from the key: a
  missing key costs one request, as a metadata get would, and never a second.
- Files and directories: a write not conditional on a revision read, a copy
  and a rename first look at the target's ancestors (one metadata request
  each) and below it (a list of one name), all at once: one round trip. GCS
  has no transaction to hold that answer, so a concurrent creator of the
  directory can still race the write. A stat or an opening read sends the
  same checks beside its own request (``looked_up_beside``): a missing key
  costs one round trip.

Must not: hold a whole body in memory, or let a key escape ``STATE_PREFIX``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import time
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import Any, ClassVar, Self, TypeVar

import google.auth.credentials
import google.auth.transport.requests

from ... import idempotency
from ...errors import BackendUnavailable, Conflict, ConnectorError, NotFound, Unsupported
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
)
from ...keys import RESERVED_SEGMENT_PREFIX
from ...settings import Settings
from ..blocking_pool import BlockingPool
from ..object_store import requests
from ..object_store.answers import PROBE_KEYS, conditional, looked_up_beside, probe_answer
from ..object_store.transfer import PartBuffers, prepend, regroup
from .api import Gcs, GcsConfig, gcs_errors, map_gcs_error
from .read import read_object
from .upload import ComposedUpload, upload_composed

T = TypeVar("T")
MAX_OBJECT_SIZE = 5 * 1024**4
# One readiness check: below the server's bound on /ready (READY_CHECK_SECONDS).
HEALTH_TIMEOUT_SECONDS = 1.5


def _meta(key: str, blob: Any) -> ObjectMeta:
    updated = blob.updated
    return ObjectMeta(
        key=key,
        size=int(blob.size or 0),
        etag=str(blob.generation),
        content_type=blob.content_type,
        last_modified=updated.timestamp() if updated is not None else None,
    )


def _generation(etag: str, key: str) -> int:
    """The generation a revision names; anything else matches no object."""
    if not etag.isdigit():
        raise Conflict(f"{key!r} has no revision {etag!r}", key=key)
    return int(etag)


def _precondition(condition: WriteCondition, key: str) -> dict[str, int]:
    if condition.if_none_match:
        return {"if_generation_match": 0}
    if condition.if_match is not None:
        return {"if_generation_match": _generation(condition.if_match, key)}
    return {}


def sign_url(blob: Any, credentials: Any, expires: int, *, remote: bool) -> str:
    """A V4 signed GET URL for ``blob``.

    Credentials with a private key sign locally. Token-only credentials of a
    service account (GKE workload identity, Compute Engine) sign through the
    IAM signBlob API, a network call, only when ``remote`` allows it.
    """
    options: dict[str, Any] = {
        "version": "v4",
        "expiration": timedelta(seconds=expires),
        "method": "GET",
    }
    if isinstance(credentials, google.auth.credentials.Signing):
        return str(blob.generate_signed_url(credentials=credentials, **options))
    if remote and getattr(credentials, "service_account_email", None):
        credentials.refresh(google.auth.transport.requests.Request())
        return str(
            blob.generate_signed_url(
                service_account_email=credentials.service_account_email,
                access_token=credentials.token,
                **options,
            )
        )
    raise Unsupported(
        f"cannot sign URLs with {type(credentials).__name__}: use a service account key, or a"
        " workload service account allowed to sign for itself (roles/iam.serviceAccountTokenCreator)"
    )


def resume_point(token: str) -> str:
    """Where a listing continues after ``token``: past it, and past everything under a prefix."""
    if token.endswith("/"):
        return token[:-1] + chr(ord("/") + 1)
    return token


class _GcsConnector(Connector):
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CREATE_ONLY, Capability.RANGE_READ, Capability.LAST_MODIFIED}
    )
    writable_xattrs = frozenset({"content_type"})
    max_object_size = MAX_OBJECT_SIZE
    idempotent_retries = frozenset({"write", "create", "rename", "delete"})

    def __init__(self, config: GcsConfig) -> None:
        self.config = config
        self._prefix = config.prefix
        self._gcs: Gcs | None = None
        self._broken: ConnectorError | None = None
        self._sweeper = idempotency.RecordSweeper(self.sweep_records, self.name)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(GcsConfig.from_settings(settings))

    @property
    def gcs(self) -> Gcs:
        if self._gcs is None:
            assert self._broken is not None, f"{self.name}: open() was not awaited"
            raise self._broken
        return self._gcs

    def _blob(self, key: str, **options: Any) -> Any:
        return self.gcs.bucket.blob(self._prefix + key, **options)

    @property
    def _io(self) -> dict[str, Any]:
        return {"timeout": self.gcs.timeout, "retry": self.gcs.retry}

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> None:
        pool = BlockingPool(self.config.max_connections, "gcs")
        try:
            client = await pool.run(self.config.make_client)
        except Exception as exc:
            # No credentials yet (say, workload identity still binding): serve,
            # and let readiness and every request report why.
            pool.shutdown()
            self._broken = map_gcs_error(exc, None)
            return
        self._gcs = Gcs(client, pool, self.config)
        self._sweeper.start()

    async def close(self) -> None:
        await self._sweeper.stop()
        gcs, self._gcs = self._gcs, None
        if gcs is not None:
            await gcs.pool.run(gcs.client.close)
            gcs.pool.shutdown()

    async def check_health(self) -> None:
        # One bounded try: readiness is asked again and again (by the kubelet,
        # by the local runner) and must say why within the probe's timeout,
        # not after retrying for GCS_RETRY_DEADLINE_SECONDS.
        try:
            await self.gcs.call(
                None, self.gcs.bucket.reload, timeout=HEALTH_TIMEOUT_SECONDS, retry=None
            )
        except NotFound as exc:
            raise BackendUnavailable(
                f"the bucket {self.config.bucket!r} does not exist: {exc.message}"
            ) from exc

    # -- stat and read --------------------------------------------------------

    async def _loaded(self, key: str) -> Any:
        blob = self._blob(key)
        await self.gcs.call(key, blob.reload, **self._io)
        return blob

    async def stat(self, key: str) -> ObjectMeta:
        return _meta(key, await self._loaded(key))

    async def probe(self, key: str) -> ObjectMeta | Kind:
        """One objects list from ``key`` with ``/`` as delimiter: as many requests as a metadata get.

        It names the key itself (with its full metadata) or rolls up
        ``key/``; GCS finds the start of a listing in its index, whatever
        else the bucket holds.
        """
        full = self._prefix + key
        blobs, prefixes, more = await self.gcs.call(key, self._page, key, "/", None, PROBE_KEYS)
        found = probe_answer(full, {blob.name: blob for blob in blobs}, prefixes, more)
        if found is None:
            return Kind.DIRECTORY if await self._has_objects_below(key) else Kind.MISSING
        return found if isinstance(found, Kind) else _meta(key, found)

    async def read(self, key: str, byte_range: RangeSpec | None = None) -> ReadStream:
        return await read_object(
            self.gcs, self._prefix + key, key, byte_range, functools.partial(self.stat, key)
        )

    async def looked_up(self, key: str, attempt: Awaitable[T]) -> T:
        return await looked_up_beside(self, key, attempt)

    # -- write ----------------------------------------------------------------

    async def write(
        self,
        key: str,
        body: AsyncIterator[bytes],
        *,
        size: int | None = None,
        condition: WriteCondition = UNCONDITIONAL,
        content_type: str | None = None,
    ) -> ObjectMeta:
        precondition = _precondition(condition, key)
        if condition.if_match is None:  # a revision read means the key holds an object
            await self.check_path(key)
        part_size = self.config.chunk_size
        buffers = PartBuffers(part_size)
        parts = regroup(body, part_size, buffers)
        first = await anext(parts, b"")
        metadata = requests.stamped(None, idempotency.current())
        if len(first) < part_size:
            await parts.aclose()
            blob = self._blob(key)
            if metadata:
                blob.metadata = metadata
            with conditional(key, condition):
                await self.gcs.call(
                    key,
                    blob.upload_from_file,
                    io.BytesIO(first),
                    size=len(first),
                    content_type=content_type,
                    **precondition,
                    **self._io,
                )
        else:
            upload = ComposedUpload(self.gcs, self._prefix, self._prefix + key, key)
            with conditional(key, condition):
                blob = await upload_composed(
                    upload,
                    prepend(first, parts),
                    buffers,
                    precondition=precondition,
                    content_type=content_type,
                    metadata=metadata,
                )
        # The upload's own answer: the generation this write created.
        return _meta(key, blob)

    # -- delete -------------------------------------------------------------------

    async def delete(self, key: str, *, condition: WriteCondition = UNCONDITIONAL) -> None:
        await self._delete(key, condition, idempotency.current())

    async def _delete(self, key: str, condition: WriteCondition, request_id: str | None) -> None:
        """Delete ``key``, leaving a record of ``request_id`` (when given) for its retries."""
        precondition: dict[str, int] = {}
        if condition.if_match is not None:
            current = await self.stat(key)
            if current.etag != condition.if_match:
                raise Conflict(f"{key!r} changed since it was read", key=key)
            precondition = _precondition(condition, key)
        remove = self.gcs.call(key, self._blob(key).delete, **precondition, **self._io)
        if request_id is None:
            await remove
            return
        # The record goes with the delete, not after it: a connector killed
        # once the delete is done still leaves what its retry looks for.
        outcomes: list[object] = await asyncio.gather(
            self._record_delete(key, request_id), remove, return_exceptions=True
        )
        recorded, removed = outcomes
        if isinstance(removed, BaseException):
            if not isinstance(recorded, BaseException):
                with contextlib.suppress(Exception):  # the delete's failure matters more
                    await self.gcs.call(key, self._record(request_id).delete, **self._io)
            raise removed

    def _record(self, request_id: str) -> Any:
        return self.gcs.bucket.blob(requests.record_name(self._prefix, request_id))

    async def _record_delete(self, key: str, request_id: str) -> None:
        record = self._record(request_id)
        record.metadata = {requests.DELETED_KEY: requests.key_digest(self._prefix + key)}
        await self.gcs.call(key, record.upload_from_string, b"", **self._io)

    # -- idempotent retries ---------------------------------------------------------

    async def applied_write(self, key: str, request_id: str) -> ObjectMeta | None:
        try:
            blob = await self._loaded(key)
        except NotFound:
            return None
        if (blob.metadata or {}).get(requests.REQUEST) != request_id:
            return None
        return _meta(key, blob)

    async def applied_delete(self, key: str, request_id: str) -> bool:
        async def record() -> Any:
            blob = self._record(request_id)
            try:
                await self.gcs.call(key, blob.reload, **self._io)
            except NotFound:
                return None
            return blob

        found, present = await asyncio.gather(record(), self._is_object(key))
        return (
            found is not None
            and not present
            and (found.metadata or {}).get(requests.DELETED_KEY)
            == requests.key_digest(self._prefix + key)
            and found.updated is not None
            and not requests.expired(found.updated.timestamp(), time.time())
        )

    async def sweep_records(self, now: float) -> int:
        """Delete the records of deletes older than the window; returns how many."""

        def old_records() -> list[Any]:
            return [
                blob
                for blob in self.gcs.client.list_blobs(
                    self.gcs.bucket, prefix=self._prefix + requests.DELETES_DIR, **self._io
                )
                if blob.updated is None or requests.expired(blob.updated.timestamp(), now)
            ]

        swept = 0
        for blob in await self.gcs.call(None, old_records):
            with contextlib.suppress(NotFound):  # another connector swept it first
                await self.gcs.call(None, blob.delete, **self._io)
                swept += 1
        return swept

    # -- list -------------------------------------------------------------------

    def _page(
        self, prefix: str, delimiter: str | None, start: str | None, size: int
    ) -> tuple[list[Any], list[str], bool]:
        iterator = self.gcs.client.list_blobs(
            self.gcs.bucket,
            prefix=self._prefix + prefix,
            delimiter=delimiter or None,
            start_offset=start,
            page_size=size,
            **self._io,
        )
        page = next(iterator.pages)
        return list(page), list(page.prefixes), iterator.next_page_token is not None

    async def list(
        self,
        prefix: str,
        *,
        delimiter: str | None = "/",
        page_token: str | None = None,
        limit: int = 1000,
    ) -> ListPage:
        # Pages resume from the last name returned (startOffset) rather than
        # from GCS page tokens: the result is the same on GCS, and emulators
        # that repeat every remaining prefix on each page cannot duplicate one.
        start = self._prefix + resume_point(page_token) if page_token else None
        blobs, prefixes, more = await self.gcs.call(
            prefix or None, self._page, prefix, delimiter, start, limit + 1
        )
        strip = len(self._prefix)
        named: list[tuple[str, Any]] = [
            (blob.name[strip:], blob)
            for blob in blobs
            # "folder/" placeholder objects made by consoles are not files.
            if not blob.name.endswith("/")
        ]
        named += [(p[strip:], None) for p in prefixes]
        # Parts of composed uploads in progress and records of deletes are not files.
        named = [item for item in named if not item[0].startswith(RESERVED_SEGMENT_PREFIX)]
        named = sorted(
            (item for item in named if page_token is None or item[0] > page_token),
            key=lambda item: item[0],
        )
        page, more = named[:limit], more or len(named) > limit
        return ListPage(
            [_meta(name, blob) for name, blob in page if blob is not None],
            [name for name, blob in page if blob is None],
            page[-1][0] if more and page else None,
        )

    # -- copy and rename ------------------------------------------------------------

    async def _rewrite(
        self, source: str, target: str, *, stamp: bool = False
    ) -> tuple[ObjectMeta, str]:
        """Server-side copy; returns the target's meta and the source generation copied.

        ``stamp``: the target carries this request's id (a rename's retry looks for it).
        """
        # A missing source outranks a conflict at the target: the runtime then
        # moves a directory object by object.
        origin, conflict = await asyncio.gather(self._loaded(source), self.path_conflict(target))
        if conflict is not None:
            raise conflict
        generation = str(origin.generation)
        destination = self._blob(target)
        if stamp and idempotency.current() is not None:
            # The rewrite's destination resource replaces the source's metadata.
            destination.metadata = requests.stamped(origin.metadata, idempotency.current())
            destination.content_type = origin.content_type
        token: str | None = None
        while True:
            token, _, _ = await self.gcs.call(
                target,
                destination.rewrite,
                origin,
                token=token,
                if_source_generation_match=origin.generation,
                **self._io,
            )
            if token is None:
                return _meta(target, destination), generation

    async def copy(self, source: str, target: str) -> ObjectMeta:
        if source == target:
            return await self.stat(source)
        meta, _ = await self._rewrite(source, target)
        return meta

    async def rename(self, source: str, target: str) -> ObjectMeta:
        if source == target:
            return await self.stat(source)
        meta, copied = await self._rewrite(source, target, stamp=True)
        # Rewritten or removed since the copy: that later change stands
        # (ordered after this rename), so the source is left to it.
        with contextlib.suppress(Conflict, NotFound):
            # No record: a retried rename is recognised at its target.
            await self._delete(source, WriteCondition(if_match=copied), None)
        return meta

    # -- attributes -----------------------------------------------------------------

    async def _signed_url(self, blob: Any, *, remote: bool) -> str:
        return await self.gcs.pool.run(
            sign_url,
            blob,
            self.gcs.client._credentials,
            self.config.signed_url_expires,
            remote=remote,
        )

    async def get_xattrs(self, key: str) -> dict[str, str]:
        blob = await self._loaded(key)
        attrs = {
            "etag": str(blob.generation),
            "generation": str(blob.generation),
            "metageneration": str(blob.metageneration),
            "url": f"gs://{self.config.bucket}/{blob.name}",
            "storage_class": blob.storage_class or "STANDARD",
        }
        if blob.content_type:
            attrs["content_type"] = blob.content_type
        # Listing attributes never waits on a remote signer; asking for the
        # attribute by name may.
        with contextlib.suppress(Unsupported):
            attrs["signed_url"] = await self._signed_url(blob, remote=False)
        return attrs

    async def get_xattr(self, key: str, name: str) -> str:
        if name == "signed_url":
            blob = await self._loaded(key)
            with gcs_errors(key):
                return await self._signed_url(blob, remote=True)
        return await super().get_xattr(key, name)

    async def set_xattr(self, key: str, name: str, value: str) -> None:
        blob = self._blob(key)
        blob.content_type = value or None
        await self.gcs.call(key, blob.patch, **self._io)

    async def remove_xattr(self, key: str, name: str) -> None:
        await self.set_xattr(key, name, "")


class GcsBufferedLww(_GcsConnector):
    name = "gcs-buffered-lww"


class GcsBufferedCas(_GcsConnector):
    name = "gcs-buffered-cas"
    capabilities = _GcsConnector.capabilities | {Capability.CAS}
