"""S3 multipart transfers: uploads fed part by part, and server-side copies above 5 GiB.

Owns: a multipart upload fed by ``send_parts`` (up to ``S3_PARTS_IN_FLIGHT``
part uploads at once while the next part fills, so memory stays at that
many parts plus one), completing with the caller's conditions (``If-Match``
/ ``If-None-Match`` on CompleteMultipartUpload), aborting on any failure —
the body raising, the client going away, a cancelled request — once no part
upload is running any more, so no partial object ever appears, and
UploadPartCopy in ranges for copies that one CopyObject cannot carry.

Must not: decide when a transfer is multipart (``s3`` does), or buffer more
than the parts in flight and the part being filled.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..object_store.transfer import Part, PartBuffers, send_parts
from .api import MAX_PARTS, S3, MiB, quote_etag, strip_etag

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger("asya_state_connectors.s3")

COPY_PART_SIZE = 512 * MiB


def part_size_for(size: int | None, configured: int) -> int:
    """The configured part size, grown (to whole MiB) when ``size`` needs more than 10,000 parts."""
    if size is None or size <= configured * MAX_PARTS:
        return configured
    return math.ceil(size / MAX_PARTS / MiB) * MiB


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
    buffers: PartBuffers,
    *,
    content_type: str | None,
    conditions: dict[str, str],
    metadata: dict[str, str] | None = None,
) -> tuple[str, int]:
    """Upload every part, several at once (``send_parts``); returns (etag, size)."""
    try:
        await upload.begin(content_type, metadata)
        _, size = await send_parts(
            parts,
            upload.upload,
            upload.s3.limits,
            buffers,
            max_parts=MAX_PARTS,
            key=upload.key,
        )
        return await upload.complete(conditions), size
    except BaseException:
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
