"""S3 multipart transfers: uploads fed part by part, and server-side copies above 5 GiB.

Owns: regrouping a body into parts of at least the part size, uploading parts
with one in flight while the next one fills (so memory stays at about two
parts), completing with the caller's conditions (``If-Match`` /
``If-None-Match`` on CompleteMultipartUpload), aborting on any failure — the
body raising, the client going away, a cancelled request — so no partial
object ever appears, and UploadPartCopy in ranges for copies that one
CopyObject cannot carry.

Must not: decide when a transfer is multipart (``s3`` does), or buffer more
than the part in flight and the part being filled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import IO, TYPE_CHECKING, Any

from ..errors import TooLarge
from ._threads import BlockingPool
from .s3_client import MAX_PARTS, S3, MiB, quote_etag, strip_etag

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger("asya_state_connectors.s3")

COPY_PART_SIZE = 512 * MiB
# A part as uploaded: a reused buffer while streaming, plain bytes otherwise.
Part = bytes | bytearray


def part_size_for(size: int | None, configured: int) -> int:
    """The configured part size, grown (to whole MiB) when ``size`` needs more than 10,000 parts."""
    if size is None or size <= configured * MAX_PARTS:
        return configured
    return math.ceil(size / MAX_PARTS / MiB) * MiB


async def regroup(body: AsyncIterator[bytes], part_size: int) -> AsyncGenerator[Part]:
    """``body`` cut into parts of exactly ``part_size`` bytes; only the last may be shorter.

    Full parts are two buffers used in turn, so a part's memory is reused two
    parts later: the consumer must be done with a part before asking for the
    one after the next (``upload_parts`` keeps one upload in flight). Reusing
    the buffers keeps the process from growing with every part, and equal
    parts keep stores that demand them working.
    """
    spare: bytearray | None = None
    current = bytearray()  # grows until the first part is full, then has a fixed size
    filled = 0
    async for chunk in body:
        view = memoryview(chunk)
        while view:
            take = min(len(view), part_size - filled)
            if len(current) < part_size:
                current += view[:take]
            else:
                current[filled : filled + take] = view[:take]
            filled += take
            view = view[take:]
            if filled == part_size:
                yield current
                current, spare = spare or bytearray(part_size), current
                filled = 0
    if len(current) < part_size:
        yield current  # the whole body, or a first part that never filled
    elif filled:
        yield bytes(memoryview(current)[:filled])


async def file_parts(pool: BlockingPool, file: IO[bytes], part_size: int) -> AsyncIterator[Part]:
    while part := await pool.run(file.read, part_size):
        yield part


class MultipartUpload:
    """One multipart upload of ``full_key``; ``key`` is the user's key for error messages."""

    def __init__(self, s3: S3, full_key: str, key: str) -> None:
        self.s3 = s3
        self.full_key = full_key
        self.key = key
        self.upload_id: str | None = None
        self.parts: list[CompletedPartTypeDef] = []

    async def begin(
        self, content_type: str | None = None, metadata: dict[str, str] | None = None
    ) -> None:
        extra: dict[str, Any] = {}
        if content_type:
            extra["ContentType"] = content_type
        if metadata:
            extra["Metadata"] = metadata
        created = await self.s3.call(
            self.key,
            self.s3.client.create_multipart_upload,
            Bucket=self.s3.bucket,
            Key=self.full_key,
            **extra,
        )
        self.upload_id = created["UploadId"]

    async def upload(self, number: int, data: Part) -> None:
        answer = await self.s3.call(
            self.key,
            self.s3.client.upload_part,
            Bucket=self.s3.bucket,
            Key=self.full_key,
            UploadId=self._id,
            PartNumber=number,
            Body=data,  # type: ignore[arg-type]  # botocore takes bytearray; its stubs omit it
        )
        self.parts.append({"ETag": answer["ETag"], "PartNumber": number})

    async def copy(self, number: int, source_key: str, first: int, last: int, etag: str) -> None:
        answer = await self.s3.call(
            self.key,
            self.s3.client.upload_part_copy,
            Bucket=self.s3.bucket,
            Key=self.full_key,
            UploadId=self._id,
            PartNumber=number,
            CopySource={"Bucket": self.s3.bucket, "Key": source_key},
            CopySourceRange=f"bytes={first}-{last}",
            CopySourceIfMatch=quote_etag(etag),
        )
        self.parts.append({"ETag": answer["CopyPartResult"]["ETag"], "PartNumber": number})

    async def complete(self, conditions: dict[str, str]) -> str:
        """Complete under ``conditions`` (IfMatch / IfNoneMatch); returns the new etag."""
        answer = await self.s3.call(
            self.key,
            self.s3.client.complete_multipart_upload,
            Bucket=self.s3.bucket,
            Key=self.full_key,
            UploadId=self._id,
            MultipartUpload={"Parts": sorted(self.parts, key=lambda p: p["PartNumber"])},
            **conditions,  # type: ignore[arg-type]
        )
        return strip_etag(answer["ETag"])

    async def abort(self) -> None:
        """Best effort, and shielded: a cancelled request still aborts its upload."""
        if self.upload_id is None:
            return
        try:
            await asyncio.shield(
                self.s3.call(
                    self.key,
                    self.s3.client.abort_multipart_upload,
                    Bucket=self.s3.bucket,
                    Key=self.full_key,
                    UploadId=self.upload_id,
                )
            )
        except Exception as exc:  # the original failure matters more
            # A bucket lifecycle rule (AbortIncompleteMultipartUpload) collects what is left.
            log.warning("could not abort multipart upload of %r: %s", self.key, exc)

    @property
    def _id(self) -> str:
        assert self.upload_id is not None, "begin() first"
        return self.upload_id


async def upload_parts(
    upload: MultipartUpload,
    parts: AsyncIterator[Part],
    *,
    content_type: str | None,
    conditions: dict[str, str],
) -> tuple[str, int]:
    """Upload every part (one in flight while the next is produced); returns (etag, size)."""
    pending: asyncio.Future[None] | None = None
    size = 0
    try:
        await upload.begin(content_type)
        number = 0
        async for part in parts:
            number += 1
            if number > MAX_PARTS:
                raise TooLarge(f"the body needs more than {MAX_PARTS} parts", key=upload.key)
            size += len(part)
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(upload.upload(number, part))
        if pending is not None:
            await pending
        return await upload.complete(conditions), size
    except BaseException:
        if pending is not None:
            await _settle(pending)
        await upload.abort()
        raise


async def copy_in_parts(
    upload: MultipartUpload,
    source_key: str,
    size: int,
    etag: str,
    *,
    content_type: str | None,
    metadata: dict[str, str],
) -> str:
    """Server-side copy of ``source_key`` (at revision ``etag``) in ranges; returns the new etag."""
    part_size = max(COPY_PART_SIZE, part_size_for(size, COPY_PART_SIZE))
    try:
        await upload.begin(content_type, metadata)
        for number, first in enumerate(range(0, size, part_size), start=1):
            last = min(first + part_size, size) - 1
            await upload.copy(number, source_key, first, last, etag)
        return await upload.complete({})
    except BaseException:
        await upload.abort()
        raise


async def _settle(pending: Awaitable[None]) -> None:
    """Wait for a part upload we are giving up on, ignoring its outcome."""
    with contextlib.suppress(BaseException):
        await pending
