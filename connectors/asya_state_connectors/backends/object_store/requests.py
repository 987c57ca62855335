"""How the object-store connectors (S3, GCS) recognise a retried request (see ``idempotency``).

Owns: the names they store a request id under and the rules for reading
them back, shared by both stores:

- A write, create or rename stores its request id in the object's own
  metadata (``x-amz-meta-asya-request`` on S3, ``metadata["asya-request"]``
  on GCS), in the same request that makes the object (PutObject,
  CreateMultipartUpload, CopyObject, an upload, the final compose, a
  rewrite). A retry whose condition then fails (or whose rename source is
  gone) is answered as applied when the current object carries its id.
  Only the latest write is known: a retry after another writer replaced the
  object fails as it did before (these backends do not declare ``replaced``).
- A delete leaves a record: an empty object named by its request id under
  ``<STATE_PREFIX>.asya-tmp-deletes/``, its metadata naming a digest of the
  key, written alongside the delete (and removed again if the delete fails).
  A retry that finds the key missing and its own record younger than
  ``idempotency.RECORD_SECONDS`` is answered as done. Records older than
  that are ignored and deleted by a sweep each connector runs about every
  ``RECORD_SECONDS``; a lifecycle rule on the reserved prefix is
  a backstop for a mount no connector serves any more.

Must not: import a store's client library, or hold a record longer than the
window it documents.
"""

from __future__ import annotations

import hashlib

from ... import idempotency
from ...keys import RESERVED_SEGMENT_PREFIX

# Metadata names (S3 lower-cases user metadata; GCS keeps what it is given).
REQUEST = "asya-request"
DELETED_KEY = "asya-deleted-key"
# Under STATE_PREFIX; user keys cannot start a segment with the reserved prefix.
DELETES_DIR = RESERVED_SEGMENT_PREFIX + "deletes/"


def record_name(prefix: str, request_id: str) -> str:
    """The full name of the delete record of ``request_id`` in a mount with ``prefix``."""
    return f"{prefix}{DELETES_DIR}{request_id}"


def key_digest(full_key: str) -> str:
    """What a delete record says about its key: ASCII, whatever the key's characters."""
    return hashlib.sha256(full_key.encode()).hexdigest()


def stamped(metadata: dict[str, str] | None, request_id: str | None) -> dict[str, str]:
    """``metadata`` with ``request_id`` as the request that made the object (when there is one)."""
    result = dict(metadata or {})
    if request_id is not None:
        result[REQUEST] = request_id
    return result


def expired(last_modified: float, now: float) -> bool:
    """Whether a record written at ``last_modified`` is past the window."""
    return idempotency.expired(last_modified, now)
