"""The S3 connectors: ``s3-passthrough``, ``s3-buffered-lww`` and ``s3-buffered-cas``.

Owns: the mapping of the connector interface onto one S3 bucket under
``STATE_PREFIX`` (configuration and the error table are in ``s3.api``,
reads in ``s3.read``, multipart transfers in ``s3.multipart``).

- Revisions are S3 ETags (quotes stripped). For single-request uploads S3
  derives the ETag from the content, so rewriting identical bytes keeps the
  revision; a conditional write is then still correct, because the object
  holds exactly what the writer read.
- Writes stream, buffered and passthrough alike (the runtime is what
  buffers): the first part's worth of the body is held; a body that ends
  within it is one PutObject carrying Content-Length and the condition
  (``If-Match: <etag read>`` or ``If-None-Match: *``), a longer one becomes a
  multipart upload fed as parts fill, ``S3_PARTS_IN_FLIGHT`` parts at once,
  completed under the condition and aborted on any failure.
- Reads are ranged GetObjects fanned out by ``s3.read`` (the first small,
  the rest pinned to its ETag and fetched ahead of the reader).
- Deletes check existence (and the revision) first, then delete with
  ``If-Match`` when conditional.
- Idempotent retries (``object_store.requests``): a write, create or rename
  stores its request id in the object's metadata (``x-amz-meta-asya-request``)
  and a delete leaves a short-lived record, so a retry after a lost reply
  gets the original outcome instead of a false 409 or 404.
  Copy and rename are server-side (CopyObject, UploadPartCopy above 5 GiB);
  rename deletes the source only at the revision it copied.
- Listing is ListObjectsV2; its continuation token is the page token. The
  ``os.path`` predicates (``probe``) are one ListObjectsV2 from the key: a
  missing key costs one request, as a HEAD would, and never a second.
- Files and directories: a write not conditional on a revision read, a copy
  and a rename first look at the target's ancestors (HeadObject each) and
  below it (ListObjectsV2 of one key), all at once: one round trip. S3 has
  no transaction to hold that answer, so a concurrent creator of the
  directory can still race the write. A stat or an opening read sends the
  same checks beside its HEAD/GET (``looked_up_beside``), so a missing key
  says ENOENT, EISDIR or ENOTDIR after one round trip, as upstream's one
  HEAD says ENOENT; a stored key's answer does not wait for them.

Must not: hold a whole body in memory, or let a key escape ``STATE_PREFIX``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import botocore.exceptions as bx

from ... import idempotency
from ...errors import BackendUnavailable, Conflict, NotFound, PermissionDenied
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
from ..object_store.transfer import Part, PartBuffers, prepend, regroup
from .api import (
    MAX_OBJECT_SIZE,
    S3,
    SINGLE_REQUEST_LIMIT,
    S3Config,
    quote_etag,
    strip_etag,
)
from .multipart import (
    MultipartUpload,
    copy_in_parts,
    part_size_for,
    upload_parts,
)
from .read import read_object

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef

T = TypeVar("T")


def _condition_args(condition: WriteCondition) -> dict[str, str]:
    if condition.if_none_match:
        return {"IfNoneMatch": "*"}
    if condition.if_match is not None:
        return {"IfMatch": quote_etag(condition.if_match)}
    return {}


class _S3Connector(Connector):
    """What every S3 connector shares, writes included; subclasses differ in name and capabilities."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.CREATE_ONLY, Capability.RANGE_READ, Capability.LAST_MODIFIED}
    )
    writable_xattrs = frozenset({"content_type"})
    max_object_size = MAX_OBJECT_SIZE
    # S3 ETags are digests of the bytes (or of the parts' digests).
    revision_follows_content = True
    idempotent_retries = frozenset({"write", "create", "rename", "delete"})

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self._prefix = config.prefix
        self._s3: S3 | None = None
        self._sweeper = idempotency.RecordSweeper(self.sweep_records, self.name)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(S3Config.from_settings(settings))

    @property
    def s3(self) -> S3:
        assert self._s3 is not None, f"{self.name}: open() was not awaited"
        return self._s3

    def _full(self, key: str) -> str:
        return self._prefix + key

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> None:
        pool = BlockingPool(self.config.max_connections, "s3")
        client = await pool.run(self.config.make_client)
        self._s3 = S3(client, pool, self.config.bucket, self.config.transfer)
        self._sweeper.start()

    async def close(self) -> None:
        await self._sweeper.stop()
        s3, self._s3 = self._s3, None
        if s3 is not None:
            await s3.pool.run(s3.client.close)
            s3.pool.shutdown()

    async def check_health(self) -> None:
        try:
            await self.s3.call(None, self.s3.client.head_bucket, Bucket=self.s3.bucket)
        except NotFound as exc:
            raise BackendUnavailable(f"the bucket {self.s3.bucket!r} does not exist") from exc

    # -- stat and read --------------------------------------------------------

    async def _head(self, key: str) -> HeadObjectOutputTypeDef:
        return await self.s3.call(
            key, self.s3.client.head_object, Bucket=self.s3.bucket, Key=self._full(key)
        )

    async def stat(self, key: str) -> ObjectMeta:
        head = await self._head(key)
        return ObjectMeta(
            key=key,
            size=head["ContentLength"],
            etag=strip_etag(head["ETag"]),
            content_type=head.get("ContentType"),
            last_modified=head["LastModified"].timestamp(),
        )

    async def read(self, key: str, byte_range: RangeSpec | None = None) -> ReadStream:
        return await read_object(self.s3, self._full(key), key, byte_range)

    async def probe(self, key: str) -> ObjectMeta | Kind:
        """One ListObjectsV2 from ``key`` with ``/`` as delimiter, as many requests as a HEAD.

        It names the key itself (sizes, ETag and time come with the listing;
        the content type does not) or rolls up ``key/``; S3 finds the start
        of a listing in its index, whatever else the bucket holds.
        """
        full = self._full(key)
        answer = await self.s3.call(
            key,
            self.s3.client.list_objects_v2,
            Bucket=self.s3.bucket,
            Prefix=full,
            Delimiter="/",
            MaxKeys=PROBE_KEYS,
        )
        files = {item["Key"]: item for item in answer.get("Contents", [])}
        prefixes = [p["Prefix"] for p in answer.get("CommonPrefixes", [])]
        found = probe_answer(full, files, prefixes, bool(answer.get("IsTruncated")))
        if found is None:
            return Kind.DIRECTORY if await self._has_objects_below(key) else Kind.MISSING
        if isinstance(found, Kind):
            return found
        return ObjectMeta(
            key=key,
            size=found["Size"],
            etag=strip_etag(found["ETag"]),
            last_modified=found["LastModified"].timestamp(),
        )

    async def looked_up(self, key: str, attempt: Awaitable[T]) -> T:
        return await looked_up_beside(self, key, attempt)

    # -- write ------------------------------------------------------------------

    async def _check_new_path(self, key: str, condition: WriteCondition) -> None:
        """The directory checks before a write; one conditional on a revision read needs none."""
        if condition.if_match is None:
            await self.check_path(key)

    async def _put(
        self,
        key: str,
        body: Part,
        size: int,
        condition: WriteCondition,
        content_type: str | None,
    ) -> ObjectMeta:
        extra: dict[str, Any] = _condition_args(condition)
        if content_type:
            extra["ContentType"] = content_type
        metadata = requests.stamped(None, idempotency.current())
        if metadata:
            extra["Metadata"] = metadata
        with conditional(key, condition):
            answer = await self.s3.call(
                key,
                self.s3.client.put_object,
                Bucket=self.s3.bucket,
                Key=self._full(key),
                Body=body,  # type: ignore[arg-type]  # botocore takes bytearray; its stubs omit it
                ContentLength=size,
                **extra,
            )
        return ObjectMeta(
            key=key, size=size, etag=strip_etag(answer["ETag"]), content_type=content_type
        )

    async def _write_streamed(
        self,
        key: str,
        body: AsyncIterator[bytes],
        size: int | None,
        condition: WriteCondition,
        content_type: str | None,
    ) -> ObjectMeta:
        """One PutObject for a body shorter than a part, else a multipart upload fed as parts fill."""
        part_size = part_size_for(size, self.config.part_size)
        buffers = PartBuffers(part_size)
        parts = regroup(body, part_size, buffers)
        first = await anext(parts, b"")
        if len(first) < part_size:
            await parts.aclose()
            return await self._put(key, first, len(first), condition, content_type)
        upload = MultipartUpload(self.s3, self._full(key), key)
        with conditional(key, condition):
            etag, total = await upload_parts(
                upload,
                prepend(first, parts),
                buffers,
                content_type=content_type,
                conditions=_condition_args(condition),
                metadata=requests.stamped(None, idempotency.current()),
            )
        return ObjectMeta(key=key, size=total, etag=etag, content_type=content_type)

    # -- delete -------------------------------------------------------------------

    async def delete(self, key: str, *, condition: WriteCondition = UNCONDITIONAL) -> None:
        await self._delete(key, condition, idempotency.current())

    async def _delete(self, key: str, condition: WriteCondition, request_id: str | None) -> None:
        """Delete ``key``, leaving a record of ``request_id`` (when given) for its retries."""
        # S3 deletes a missing key silently: look first, so a missing key is NotFound.
        current = await self.stat(key)
        extra: dict[str, Any] = {}
        if condition.if_match is not None:
            if current.etag != condition.if_match:
                raise Conflict(f"{key!r} changed since it was read", key=key)
            # Enforced by S3 itself, closing the gap between the look and the delete.
            extra["IfMatch"] = quote_etag(condition.if_match)
        remove = self.s3.call(
            key,
            self.s3.client.delete_object,
            Bucket=self.s3.bucket,
            Key=self._full(key),
            **extra,
        )
        if request_id is None:
            await remove
            return
        # The record goes with the delete, not after it: a connector killed
        # once the delete is done still leaves what its retry looks for.
        recorded, removed = await asyncio.gather(
            self._record_delete(key, request_id), remove, return_exceptions=True
        )
        if isinstance(removed, BaseException):
            if not isinstance(recorded, BaseException):
                with contextlib.suppress(Exception):  # the delete's failure matters more
                    await self._forget_delete(request_id)
            raise removed

    async def _record_delete(self, key: str, request_id: str) -> None:
        await self.s3.call(
            key,
            self.s3.client.put_object,
            Bucket=self.s3.bucket,
            Key=requests.record_name(self._prefix, request_id),
            Body=b"",
            Metadata={requests.DELETED_KEY: requests.key_digest(self._full(key))},
        )

    async def _forget_delete(self, request_id: str) -> None:
        await self.s3.call(
            None,
            self.s3.client.delete_object,
            Bucket=self.s3.bucket,
            Key=requests.record_name(self._prefix, request_id),
        )

    # -- idempotent retries ---------------------------------------------------------

    async def applied_write(self, key: str, request_id: str) -> ObjectMeta | None:
        try:
            head = await self._head(key)
        except NotFound:
            return None
        if head.get("Metadata", {}).get(requests.REQUEST) != request_id:
            return None
        return ObjectMeta(
            key=key,
            size=head["ContentLength"],
            etag=strip_etag(head["ETag"]),
            content_type=head.get("ContentType"),
            last_modified=head["LastModified"].timestamp(),
        )

    async def applied_delete(self, key: str, request_id: str) -> bool:
        async def record() -> HeadObjectOutputTypeDef | None:
            try:
                return await self.s3.call(
                    key,
                    self.s3.client.head_object,
                    Bucket=self.s3.bucket,
                    Key=requests.record_name(self._prefix, request_id),
                )
            except NotFound:
                return None

        found, present = await asyncio.gather(record(), self._is_object(key))
        return (
            found is not None
            and not present
            and found.get("Metadata", {}).get(requests.DELETED_KEY)
            == requests.key_digest(self._full(key))
            and not requests.expired(found["LastModified"].timestamp(), time.time())
        )

    async def sweep_records(self, now: float) -> int:
        """Delete the records of deletes older than the window; returns how many."""
        swept = 0
        token: str | None = None
        while True:
            args: dict[str, Any] = {
                "Bucket": self.s3.bucket,
                "Prefix": self._prefix + requests.DELETES_DIR,
            }
            if token:
                args["ContinuationToken"] = token
            answer = await self.s3.call(None, self.s3.client.list_objects_v2, **args)
            old = [
                {"Key": item["Key"]}
                for item in answer.get("Contents", [])
                if requests.expired(item["LastModified"].timestamp(), now)
            ]
            if old:
                await self.s3.call(
                    None,
                    self.s3.client.delete_objects,
                    Bucket=self.s3.bucket,
                    Delete={"Objects": old, "Quiet": True},  # type: ignore[typeddict-item]
                )
                swept += len(old)
            if not answer.get("IsTruncated"):
                return swept
            token = answer.get("NextContinuationToken")

    # -- list -------------------------------------------------------------------

    async def list(
        self,
        prefix: str,
        *,
        delimiter: str | None = "/",
        page_token: str | None = None,
        limit: int = 1000,
    ) -> ListPage:
        args: dict[str, Any] = {
            "Bucket": self.s3.bucket,
            "Prefix": self._full(prefix),
            "MaxKeys": limit,
        }
        if delimiter:
            args["Delimiter"] = delimiter
        if page_token:
            args["ContinuationToken"] = page_token
        answer = await self.s3.call(prefix or None, self.s3.client.list_objects_v2, **args)
        strip = len(self._prefix)
        entries = [
            ObjectMeta(
                key=item["Key"][strip:],
                size=item["Size"],
                etag=strip_etag(item["ETag"]),
                last_modified=item["LastModified"].timestamp(),
            )
            for item in answer.get("Contents", [])
            # "folder/" placeholder objects made by consoles are not files.
            if not item["Key"].endswith("/")
        ]
        # The connector's own records (``.asya-tmp-deletes/``) are not files.
        prefixes = [
            p["Prefix"][strip:]
            for p in answer.get("CommonPrefixes", [])
            if not p["Prefix"][strip:].startswith(RESERVED_SEGMENT_PREFIX)
        ]
        if not delimiter:
            entries = [e for e in entries if not e.key.startswith(RESERVED_SEGMENT_PREFIX)]
        token = answer.get("NextContinuationToken") if answer.get("IsTruncated") else None
        return ListPage(entries, prefixes, token)

    # -- copy and rename ------------------------------------------------------------

    async def _copy_over(
        self,
        source: str,
        target: str,
        *,
        content_type: str | None = None,
        replace: bool = False,
        stamp: bool = False,
    ) -> ObjectMeta:
        """Server-side copy of ``source`` as it is now; ``replace`` sets a new content type.

        ``stamp``: the target carries this request's id (a rename's retry looks for it).
        """
        head = await self._head(source)
        etag = strip_etag(head["ETag"])
        size = head["ContentLength"]
        kept_type = content_type if replace else head.get("ContentType")
        metadata = dict(head.get("Metadata", {}))
        if stamp and idempotency.current() is not None:
            metadata = requests.stamped(metadata, idempotency.current())
            replace = True
        if size > SINGLE_REQUEST_LIMIT:
            upload = MultipartUpload(self.s3, self._full(target), target)
            new_etag = await copy_in_parts(
                upload,
                self._full(source),
                size,
                etag,
                content_type=kept_type,
                metadata=metadata,
            )
        else:
            extra: dict[str, Any] = {}
            if replace:
                extra = {"MetadataDirective": "REPLACE", "Metadata": metadata}
                if kept_type:
                    extra["ContentType"] = kept_type
            answer = await self.s3.call(
                target,
                self.s3.client.copy_object,
                Bucket=self.s3.bucket,
                Key=self._full(target),
                CopySource={"Bucket": self.s3.bucket, "Key": self._full(source)},
                CopySourceIfMatch=quote_etag(etag),
                **extra,
            )
            new_etag = strip_etag(answer["CopyObjectResult"]["ETag"])
        return ObjectMeta(key=target, size=size, etag=new_etag, content_type=kept_type)

    async def _check_move(self, source: str, target: str) -> ObjectMeta:
        """The source's metadata and the target's directory checks, at once.

        A missing source outranks a conflict at the target: the runtime then
        moves a directory object by object.
        """
        head, conflict = await asyncio.gather(self.stat(source), self.path_conflict(target))
        if conflict is not None:
            raise conflict
        return head

    async def copy(self, source: str, target: str) -> ObjectMeta:
        if source == target:
            return await self.stat(source)
        await self._check_move(source, target)
        return await self._copy_over(source, target)

    async def rename(self, source: str, target: str) -> ObjectMeta:
        if source == target:
            return await self.stat(source)
        head = await self._check_move(source, target)
        meta = await self._copy_over(source, target, stamp=True)
        # Rewritten or removed since the copy: that later change stands
        # (ordered after this rename), so the source is left to it.
        with contextlib.suppress(Conflict, NotFound):
            # No record: a retried rename is recognised at its target.
            await self._delete(source, WriteCondition(if_match=head.etag), None)
        return meta

    # -- attributes -----------------------------------------------------------------

    async def _presign(self, key: str) -> str:
        """Signed locally, but resolving credentials may ask an instance metadata service."""
        try:
            return await self.s3.pool.run(
                self.s3.client.generate_presigned_url,
                "get_object",
                Params={"Bucket": self.s3.bucket, "Key": self._full(key)},
                ExpiresIn=self.config.presign_expires,
            )
        except bx.BotoCoreError as exc:
            raise PermissionDenied(f"cannot presign a URL for {key!r}: {exc}", key=key) from exc

    async def get_xattrs(self, key: str) -> dict[str, str]:
        head = await self._head(key)
        attrs = {
            "etag": strip_etag(head["ETag"]),
            "url": f"s3://{self.s3.bucket}/{self._full(key)}",
            "storage_class": head.get("StorageClass") or "STANDARD",
        }
        if head.get("ContentType"):
            attrs["content_type"] = head["ContentType"]
        version = head.get("VersionId")
        if version and version != "null":
            attrs["version"] = version
        # Without credentials to sign with, the attribute is simply absent.
        with contextlib.suppress(PermissionDenied):
            attrs["presigned_url"] = await self._presign(key)
        return attrs

    async def get_xattr(self, key: str, name: str) -> str:
        if name == "presigned_url":
            await self._head(key)  # a URL for a missing key would only 404 later
            return await self._presign(key)
        return await super().get_xattr(key, name)

    async def set_xattr(self, key: str, name: str, value: str) -> None:
        await self._copy_over(key, key, content_type=value or None, replace=True)

    async def remove_xattr(self, key: str, name: str) -> None:
        await self._copy_over(key, key, content_type=None, replace=True)

    async def write(
        self,
        key: str,
        body: AsyncIterator[bytes],
        *,
        size: int | None = None,
        condition: WriteCondition = UNCONDITIONAL,
        content_type: str | None = None,
    ) -> ObjectMeta:
        """One PutObject for a body shorter than a part, else a concurrent multipart upload."""
        await self._check_new_path(key, condition)
        return await self._write_streamed(key, body, size, condition, content_type)


class _S3Buffered(_S3Connector):
    """Writes arrive whole (with their length) from the runtime's spool."""


class S3BufferedLww(_S3Buffered):
    name = "s3-buffered-lww"


class S3BufferedCas(_S3Buffered):
    name = "s3-buffered-cas"
    capabilities = _S3Connector.capabilities | {Capability.CAS}


class S3Passthrough(_S3Connector):
    """Writes stream from the handler as it writes (no spool in the runtime)."""

    name = "s3-passthrough"
