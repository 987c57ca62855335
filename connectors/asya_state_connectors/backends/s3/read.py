"""Reads of S3 objects: a small first ranged GET, then pinned ranges fanned out by the prefetcher.

Owns: turning a read (whole object or a protocol byte range) into a first
GetObject of at most ``first_range`` bytes, whose answer gives the object's
size, ETag and type, and handing the rest of the read to ``Prefetcher`` with
ranges pinned to that ETag by ``If-Match`` (S3 answers 412 once the object
was overwritten, and the read fails as ``Stale`` instead of mixing versions).
A suffix range longer than the first range asks HeadObject for the size and
pins its first GET too. A range S3 refuses is refused the same way, or
answered empty when it is empty by rule (any range of an empty object).

Must not: decide how far ahead to read (``object_store.prefetch`` does) or write anything.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import botocore.exceptions as bx

from ...interface import ObjectMeta, RangeSpec, ReadStream
from ..object_store.answers import content_range, no_chunks
from ..object_store.prefetch import Prefetcher, RangeBody, Stale
from .api import S3, error_code, quote_etag, s3_errors, strip_etag

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef

# What S3 answers a GET whose If-Match no longer holds, or whose object is gone.
_CHANGED = frozenset({"PreconditionFailed", "412", "NoSuchKey", "404"})


async def read_object(s3: S3, full_key: str, key: str, spec: RangeSpec | None) -> ReadStream:
    """Open ``key`` (stored as ``full_key``) for streaming ``spec`` (None: the whole object)."""
    first_range = s3.limits.settings.first_range
    args: dict[str, Any] = {"Bucket": s3.bucket, "Key": full_key}
    whole = spec or RangeSpec(0, None)
    if whole.first is None and (whole.last or 0) > first_range:
        # Where a long suffix starts depends on the size: ask, and pin to what was asked.
        head = await s3.call(key, s3.client.head_object, **args)
        start, _ = whole.resolve(head["ContentLength"], key)
        whole = RangeSpec(start, head["ContentLength"] - 1)
        args["IfMatch"] = head["ETag"]
    if whole.first is None:
        args["Range"] = f"bytes=-{whole.last or 0}"
    else:
        last = whole.first + first_range - 1
        if whole.last is not None:
            last = min(last, whole.last)
        args["Range"] = f"bytes={whole.first}-{last}"
    with s3_errors(key):
        try:
            answer = await s3.pool.run(s3.client.get_object, **args)
        except bx.ClientError as exc:
            code = error_code(exc)
            if code == "InvalidRange":
                return await _empty_or_refused(s3, full_key, key, spec)
            if "IfMatch" in args and code in _CHANGED:
                raise Stale(f"{key!r} changed while it was being read", key=key) from exc
            raise
    return _stream(s3, full_key, key, whole, answer)


def _stream(
    s3: S3, full_key: str, key: str, whole: RangeSpec, answer: GetObjectOutputTypeDef
) -> ReadStream:
    body = answer["Body"]
    received = answer["ContentLength"]
    first, size = content_range(answer.get("ContentRange"), received)
    etag = strip_etag(answer["ETag"])
    meta = ObjectMeta(
        key=key,
        size=size,
        etag=etag,
        content_type=answer.get("ContentType"),
        last_modified=answer["LastModified"].timestamp(),
    )
    start, length = (first, received) if whole.first is None else whole.resolve(size, key)

    async def open_range(first: int, last: int) -> RangeBody:
        try:
            part = await s3.pool.run(
                s3.client.get_object,
                Bucket=s3.bucket,
                Key=full_key,
                Range=f"bytes={first}-{last}",
                IfMatch=quote_etag(etag),
            )
        except bx.ClientError as exc:
            if error_code(exc) in _CHANGED:
                raise Stale(f"{key!r} changed while it was being read", key=key) from exc
            raise
        return RangeBody(part["Body"].read, part["Body"].close)

    chunks = Prefetcher(
        pool=s3.pool,
        limits=s3.limits,
        open_range=open_range,
        start=start,
        length=length,
        first=RangeBody(body.read, body.close),
        first_size=min(received, length),
        errors=functools.partial(s3_errors, key),
        what=f"the S3 object {key!r}",
    )
    return ReadStream(meta, start, length, chunks)


async def _empty_or_refused(s3: S3, full_key: str, key: str, spec: RangeSpec | None) -> ReadStream:
    """S3 refused the range: refuse it the same way, or answer a range that is empty by rule."""
    head = await s3.call(key, s3.client.head_object, Bucket=s3.bucket, Key=full_key)
    meta = ObjectMeta(
        key=key,
        size=head["ContentLength"],
        etag=strip_etag(head["ETag"]),
        content_type=head.get("ContentType"),
        last_modified=head["LastModified"].timestamp(),
    )
    if spec is None and meta.size == 0:
        return ReadStream(meta, 0, 0, no_chunks())
    if spec is None:  # written in between: read what is there now
        return await read_object(s3, full_key, key, None)
    start, length = spec.resolve(meta.size, key)
    return ReadStream(meta, start, length, no_chunks())
