"""Reads of GCS objects: a small first ranged media GET, then generation-pinned ranges fanned out.

Owns: the media download URL, turning a read (whole object or a protocol
byte range) into a first ranged media request of at most ``first_range``
bytes whose headers carry the generation, size and type (so a small read is
one round trip), and handing the rest of the read to ``Prefetcher`` with
ranges pinned to that generation (``generation=`` on the URL: GCS answers
404 once that generation is gone, and the read fails as ``Stale`` instead of
mixing versions; a bucket that keeps old generations serves the old bytes).
A range GCS refuses is refused the same way, or answered empty when it is
empty by rule.

Must not: decide how far ahead to read (``object_store.prefetch`` does) or write anything.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from google.api_core import exceptions as gx

from ...interface import ObjectMeta, RangeSpec, ReadStream
from ..object_store.answers import content_range, no_chunks
from ..object_store.prefetch import Prefetcher, RangeBody, Stale
from .api import Gcs, gcs_errors

Stat = Callable[[], Awaitable[ObjectMeta]]


def download_url(gcs: Gcs, full_key: str) -> str:
    base = gcs.client.api_endpoint
    bucket = quote(gcs.bucket.name, safe="")
    return f"{base}/download/storage/v1/b/{bucket}/o/{quote(full_key, safe='')}?alt=media"


def _get(gcs: Gcs, url: str, headers: dict[str, str], *, pinned: bool) -> Any:
    """One media GET (blocking); answers 200/206/416, raises for anything else."""
    response = gcs.client._http.get(url, headers=headers, stream=True, timeout=gcs.timeout)
    if response.status_code in (200, 206, 416):
        return response
    try:
        if pinned and response.status_code == 404:
            raise Stale("the object changed while it was being read")
        raise gx.from_http_response(response)  # type: ignore[no-untyped-call]
    finally:
        response.close()


async def read_object(
    gcs: Gcs, full_key: str, key: str, spec: RangeSpec | None, stat: Stat
) -> ReadStream:
    """Open ``key`` (stored as ``full_key``) for streaming ``spec`` (None: the whole object)."""
    first_range = gcs.limits.settings.first_range
    url = download_url(gcs, full_key)
    whole = spec or RangeSpec(0, None)
    pinned = False
    if whole.first is None and (whole.last or 0) > first_range:
        # Where a long suffix starts depends on the size: ask, and pin to what was asked.
        meta = await stat()
        start, _ = whole.resolve(meta.size, key)
        whole = RangeSpec(start, meta.size - 1)
        url += f"&generation={meta.etag}"
        pinned = True
    if whole.first is None:
        header = f"bytes=-{whole.last or 0}"
    else:
        last = whole.first + first_range - 1
        if whole.last is not None:
            last = min(last, whole.last)
        header = f"bytes={whole.first}-{last}"
    headers = {"Accept-Encoding": "identity", "Range": header}
    opener = gcs.retry(functools.partial(_get, gcs, pinned=pinned))
    with gcs_errors(key):
        try:
            response = await gcs.pool.run(opener, url, headers)
        except Stale as exc:
            raise Stale(f"{key!r} changed while it was being read", key=key) from exc
    if response.status_code == 416:
        response.close()
        return await _empty_or_refused(
            key, spec, stat, lambda: read_object(gcs, full_key, key, spec, stat)
        )
    answer = response.headers
    received = int(answer.get("Content-Length", "0"))
    stored = answer.get("x-goog-stored-content-length") or str(received)
    first, size = content_range(answer.get("Content-Range"), int(stored))
    generation = answer.get("x-goog-generation", "")
    modified = answer.get("Last-Modified")
    meta = ObjectMeta(
        key=key,
        size=size,
        etag=generation,
        content_type=answer.get("Content-Type"),
        last_modified=parsedate_to_datetime(modified).timestamp() if modified else None,
    )
    start, length = (first, received) if whole.first is None else whole.resolve(size, key)
    base = download_url(gcs, full_key) + f"&generation={generation}"

    async def open_range(first: int, last: int) -> RangeBody:
        try:
            part = await gcs.pool.run(
                _get,
                gcs,
                base,
                {"Accept-Encoding": "identity", "Range": f"bytes={first}-{last}"},
                pinned=True,
            )
        except Stale as exc:
            raise Stale(f"{key!r} changed while it was being read", key=key) from exc
        return RangeBody(part.raw.read, part.close)

    chunks = Prefetcher(
        pool=gcs.pool,
        limits=gcs.limits,
        open_range=open_range,
        start=start,
        length=length,
        first=RangeBody(response.raw.read, response.close),
        first_size=min(received, length),
        errors=functools.partial(gcs_errors, key),
        what=f"the GCS object {key!r}",
    )
    return ReadStream(meta, start, length, chunks)


async def _empty_or_refused(
    key: str, spec: RangeSpec | None, stat: Stat, again: Callable[[], Awaitable[ReadStream]]
) -> ReadStream:
    """GCS refused the range: refuse it the same way, or answer a range that is empty by rule."""
    meta = await stat()
    if spec is None and meta.size == 0:
        return ReadStream(meta, 0, 0, no_chunks())
    if spec is None:  # written in between: read what is there now
        return await again()
    start, length = spec.resolve(meta.size, key)
    return ReadStream(meta, start, length, no_chunks())
