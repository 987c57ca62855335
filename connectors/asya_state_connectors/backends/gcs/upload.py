"""Large GCS writes: parts uploaded at once as temporary objects, composed under the precondition.

Owns: uploading the parts of one write concurrently (``send_parts``: up to
``GCS_PARTS_IN_FLIGHT`` at once, each a single media request of its bytes)
as temporary objects under ``<STATE_PREFIX>.asya-tmp-uploads/<id>/``,
composing them — 32 at a time, in a tree for more — into the target with the
write's precondition (and its request id, in the metadata) on the final compose (``ifGenerationMatch``: the
generation read, or 0 to create), and deleting every temporary object
afterwards, whether the write succeeded or not. Nothing is visible under the
target's name until the final compose, so a failure or a client going away
leaves the previous version.

Why compose: GCS's XML multipart uploads (what ``transfer_manager`` uses)
take no preconditions, and resumable uploads are sequential. fake-gcs-server
ignores preconditions on compose, so the generation is also checked just
before the final compose (GCS itself closes the gap).

A connector killed mid-write leaves its temporary objects behind (never the
target): a lifecycle rule deleting ``<STATE_PREFIX>.asya-tmp-uploads/``
objects older than a day collects them.

Must not: decide when a write is composed (``gcs`` does), or hold more than
the parts in flight and the part being filled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from google.api_core import exceptions as gx

from ...errors import Conflict, NotFound
from ...keys import RESERVED_SEGMENT_PREFIX
from ..object_store.transfer import Part, PartBuffers, send_parts
from .api import Gcs

log = logging.getLogger("asya_state_connectors.gcs")

# Under STATE_PREFIX; user keys cannot start a segment with the reserved prefix.
TEMPORARY_DIR = RESERVED_SEGMENT_PREFIX + "uploads/"
MAX_COMPOSE = 32


class ComposedUpload:
    """One write of ``full_key`` (``key`` for messages) through temporary part objects."""

    def __init__(self, gcs: Gcs, prefix: str, full_key: str, key: str) -> None:
        self.gcs = gcs
        self.full_key = full_key
        self.key = key
        self.base = f"{prefix}{TEMPORARY_DIR}{uuid.uuid4().hex}/"
        self.temporary: list[str] = []
        self.parts: dict[int, str] = {}

    @property
    def _io(self) -> dict[str, Any]:
        return {"timeout": self.gcs.timeout, "retry": self.gcs.retry}

    def _post_part(self, name: str, data: Part) -> None:
        """One media upload (blocking): the part's bytes are the request body, uncopied."""
        base = self.gcs.client.api_endpoint
        bucket = quote(self.gcs.bucket.name, safe="")
        url = f"{base}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(name, safe='')}"
        response = self.gcs.client._http.post(
            url,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=self.gcs.timeout,
        )
        try:
            if response.status_code != 200:
                raise gx.from_http_response(response)  # type: ignore[no-untyped-call]
        finally:
            response.close()

    async def send(self, number: int, data: Part) -> None:
        name = f"{self.base}{number:06d}"
        self.temporary.append(name)
        # A unique name: retrying a part that may have been stored is harmless.
        await self.gcs.call(self.key, self.gcs.retry(self._post_part), name, data)
        self.parts[number] = name

    async def _compose(self, sources: list[str], target: str, **options: Any) -> Any:
        blob = self.gcs.bucket.blob(target)
        if "content_type" in options:
            blob.content_type = options.pop("content_type")
        metadata = options.pop("metadata", None)
        if metadata:
            blob.metadata = metadata
        await self.gcs.call(
            self.key,
            blob.compose,
            [self.gcs.bucket.blob(name) for name in sources],
            **options,
            **self._io,
        )
        return blob

    async def finish(
        self,
        precondition: dict[str, int],
        content_type: str | None,
        metadata: dict[str, str] | None = None,
    ) -> Any:
        """Compose every part into the target under ``precondition``; returns the target blob."""
        names = [self.parts[number] for number in sorted(self.parts)]
        level = 0
        while len(names) > MAX_COMPOSE:
            groups = [names[i : i + MAX_COMPOSE] for i in range(0, len(names), MAX_COMPOSE)]
            targets = [f"{self.base}c{level}-{i:05d}" for i in range(len(groups))]
            self.temporary.extend(targets)
            await asyncio.gather(
                *(self._compose(group, target) for group, target in zip(groups, targets))
            )
            names, level = targets, level + 1
        wanted = precondition.get("if_generation_match")
        if wanted is not None:
            await self._check_generation(wanted)
        return await self._compose(
            names, self.full_key, content_type=content_type, metadata=metadata, **precondition
        )

    async def _check_generation(self, wanted: int) -> None:
        blob = self.gcs.bucket.blob(self.full_key)
        try:
            await self.gcs.call(self.key, blob.reload, **self._io)
        except NotFound:
            if wanted != 0:
                raise Conflict(f"{self.key!r} changed since it was read", key=self.key) from None
            return
        if wanted != blob.generation:
            raise Conflict(f"{self.key!r} changed since it was read", key=self.key)

    async def clean_up(self) -> None:
        """Delete every temporary object (best effort, shielded from cancellation)."""
        names, self.temporary = self.temporary, []
        if not names:
            return

        async def remove(name: str) -> None:
            try:
                await self.gcs.call(self.key, self.gcs.bucket.blob(name).delete, **self._io)
            except NotFound:
                pass
            except Exception as exc:  # the write's own outcome matters more
                log.warning("could not delete the temporary part %r: %s", name, exc)

        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(asyncio.gather(*(remove(name) for name in names)))


async def upload_composed(
    upload: ComposedUpload,
    parts: AsyncIterator[Part],
    buffers: PartBuffers,
    *,
    precondition: dict[str, int],
    content_type: str | None,
    metadata: dict[str, str] | None = None,
) -> Any:
    """Upload ``parts`` and compose them into the target; returns the target blob."""
    try:
        await send_parts(parts, upload.send, upload.gcs.limits, buffers)
        return await upload.finish(precondition, content_type, metadata)
    finally:
        await upload.clean_up()
