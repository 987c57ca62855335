"""The connector interface every storage backend implements.

Owns: the abstract base class ``Connector`` (a small required core plus
optional operations guarded by declared capabilities), the value types that
cross it, and byte-range resolution shared by every backend.

Must not: know about HTTP, Kubernetes or the runtime. The server adapts this
interface to the wire protocol; backends adapt it to their storage.

Rules every backend follows (the conformance suite checks them):
- A failed or aborted write (the body iterator raises, a condition fails, the
  size limit is hit) leaves the previous version intact and never exposes a
  partial object.
- ``etag`` is an opaque revision that changes on every successful write
  that changes the content. Backends whose revision is derived from the
  content (S3 ETags are digests) declare ``revision_follows_content``: for
  them rewriting identical bytes keeps the revision, which is still safe for
  compare-and-swap because the object then holds exactly what was read.
- Keys arrive validated (``keys.validate_key``); a backend joins them under
  its own prefix and never lets them escape it.
- Files and directories behave as on a local disk: a write (or copy, rename,
  append) never creates an object at a key that has objects below it
  (IsADirectory) or below a key that is an object (NotADirectory). The check
  runs before the write is applied, atomically with it where the backend has
  transactions; a write conditional on a revision the writer read skips it,
  since the key then holds an object. Reads and stats of a missing key say
  NotFound; the server has ``looked_up`` turn that into ``Missing``
  carrying what ``path_conflict`` says, so only the not-found path waits
  for the answer. A backend that learned the answer in the same request
  raises ``Missing`` itself.
- Cost does not grow with keys outside the question: a stat, a directory
  check and a listing page cost O(log N) or better in the keys the backend
  holds (for other mounts too) and O(n) in the entries returned.
"""

from __future__ import annotations

import asyncio
import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Self, TypeVar

from .errors import (
    BadRequest,
    ConnectorError,
    IsADirectory,
    NoSuchAttribute,
    NotADirectory,
    NotFound,
    RangeNotSatisfiable,
    Unsupported,
)
from .keys import ancestors
from .settings import Settings

T = TypeVar("T")


class Capability(enum.Enum):
    """Optional behaviour a connector declares; the server refuses the rest with 501."""

    CAS = "cas"  # writes and deletes conditional on If-Match: <etag>
    CREATE_ONLY = "create_only"  # writes conditional on If-None-Match: *
    APPEND = "append"  # native atomic append
    RANGE_READ = "range_read"  # ranged reads without reading the skipped bytes
    TTL = "ttl"  # per-key expiry through the user.asya.ttl attribute
    LAST_MODIFIED = "last_modified"  # stat reports a modification time


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What ``stat`` knows about one stored object."""

    key: str
    size: int
    etag: str
    content_type: str | None = None
    last_modified: float | None = None  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a listing: objects, common prefixes and the next page's token."""

    entries: list[ObjectMeta]
    prefixes: list[str] = field(default_factory=list)
    next_token: str | None = None


@dataclass(frozen=True, slots=True)
class WriteCondition:
    """A precondition on a write or delete. The default is unconditional."""

    if_match: str | None = None  # the etag the writer read
    if_none_match: bool = False  # create-only: the key must not exist

    @property
    def unconditional(self) -> bool:
        return self.if_match is None and not self.if_none_match


UNCONDITIONAL = WriteCondition()


@dataclass(frozen=True, slots=True)
class RangeSpec:
    """A parsed single HTTP byte range: ``first-last``, ``first-`` or ``-suffix``."""

    first: int | None
    last: int | None

    def resolve(self, size: int, key: str) -> tuple[int, int]:
        """Return ``(start, length)`` within an object of ``size`` bytes."""
        if self.first is None:
            suffix = self.last or 0
            if suffix == 0:
                raise RangeNotSatisfiable("empty suffix range", key=key, size=size)
            start = max(0, size - suffix)
            return start, size - start
        if self.first >= size:
            raise RangeNotSatisfiable(
                f"range starts at {self.first} but the object has {size} bytes", key=key, size=size
            )
        end = size - 1 if self.last is None else min(self.last, size - 1)
        return self.first, end - self.first + 1


@dataclass(slots=True)
class ReadStream:
    """An open read: metadata of the whole object and the requested bytes as chunks.

    ``chunks`` must be closed (``aclose``) when abandoned so the backend can
    release its connection or file.
    """

    meta: ObjectMeta
    start: int
    length: int
    chunks: AsyncIterator[bytes]

    async def aclose(self) -> None:
        closer = getattr(self.chunks, "aclose", None)
        if closer is not None:
            await closer()


class Kind(enum.Enum):
    """What ``probe`` finds at a key that is not a file."""

    DIRECTORY = "directory"
    MISSING = "missing"


class Missing(NotFound):
    """NotFound from a backend that learned, with the same request, why the key is not an object.

    ``conflict`` is what ``path_conflict`` would answer: IsADirectory,
    NotADirectory, or None when nothing is there at all.
    """

    def __init__(self, key: str, conflict: ConnectorError | None) -> None:
        super().__init__(f"no object at {key!r}", key=key)
        self.conflict = conflict


def is_a_directory(key: str) -> IsADirectory:
    return IsADirectory(f"{key!r} is a directory", key=key)


def not_a_directory(key: str, parent: str) -> NotADirectory:
    return NotADirectory(f"{parent!r} is a file, so {key!r} cannot be below it", key=key)


# Attributes every connector exposes from ``stat``; backends add their own.
STANDARD_XATTRS = ("etag", "content_type")

MAX_CONTENT_TYPE = 1024


def valid_content_type(value: str) -> bool:
    """Whether ``value`` may be stored as a content type: printable ASCII, at most 1024 characters.

    A content type goes back out as a response header, so CR, LF, NUL or
    any other control character in it would inject header lines.
    """
    return len(value) <= MAX_CONTENT_TYPE and value.isascii() and value.isprintable()


def check_content_type(value: str | None, *, key: str, field: str = "Content-Type") -> None:
    """Raise BadRequest naming ``field`` unless ``value`` is absent, empty or a valid content type."""
    if value and not valid_content_type(value):
        raise BadRequest(
            f"{field} must be printable ASCII of at most {MAX_CONTENT_TYPE} characters"
            " (no CR, LF, NUL or other control character)",
            key=key,
        )


class Connector(ABC):
    """A storage backend behind the wire protocol.

    Required core: ``stat``, ``read``, ``write``, ``delete``, ``list``.
    Everything else has a default built on the core or raises Unsupported;
    backends override what their storage does natively and declare it in
    ``capabilities`` and ``writable_xattrs``.
    """

    #: The connector's registry name, e.g. ``fs-buffered-cas``.
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: Attribute names (without ``user.asya.``) that ``set_xattr`` accepts.
    writable_xattrs: ClassVar[frozenset[str]] = frozenset()
    #: Largest object the backend accepts, or None for no limit.
    max_object_size: int | None = None
    #: The revision is a digest of the content, not a per-write stamp.
    revision_follows_content: ClassVar[bool] = False
    #: Operations whose retry with the same request id returns the original
    #: outcome (``write``, ``create``, ``append``, ``rename``, ``delete``; see
    #: idempotency): the conformance suite checks each one declared. With
    #: ``replaced`` also when other writes to the key came between the first
    #: attempt and its retry (the backend remembers the key's recent writes).
    idempotent_retries: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Build the connector from its environment; raise ConfigError on bad settings."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire clients and pools; called once before serving."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and pools; called once after the last request."""

    async def check_health(self) -> None:  # noqa: B027 - optional hook
        """Raise BackendUnavailable when the backend cannot serve requests."""

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    # -- required core ---------------------------------------------------

    @abstractmethod
    async def stat(self, key: str) -> ObjectMeta:
        """Metadata of ``key``; NotFound if absent."""

    @abstractmethod
    async def read(self, key: str, byte_range: RangeSpec | None = None) -> ReadStream:
        """Open ``key`` for streaming; NotFound if absent, RangeNotSatisfiable if out of range."""

    @abstractmethod
    async def write(
        self,
        key: str,
        body: AsyncIterator[bytes],
        *,
        size: int | None = None,
        condition: WriteCondition = UNCONDITIONAL,
        content_type: str | None = None,
    ) -> ObjectMeta:
        """Store the whole of ``body`` as ``key`` atomically; Conflict if ``condition`` fails."""

    @abstractmethod
    async def delete(self, key: str, *, condition: WriteCondition = UNCONDITIONAL) -> None:
        """Remove ``key``; NotFound if absent, Conflict if ``condition`` fails."""

    @abstractmethod
    async def list(
        self,
        prefix: str,
        *,
        delimiter: str | None = "/",
        page_token: str | None = None,
        limit: int = 1000,
    ) -> ListPage:
        """Objects whose key starts with ``prefix``, in key order, ``limit`` per page.

        With a delimiter, keys with a further delimiter after the prefix are
        rolled up into ``prefixes`` (each ending with the delimiter).
        """

    # -- files and directories -------------------------------------------

    async def path_conflict(self, key: str) -> ConnectorError | None:
        """What a local disk would say about using ``key`` as a file, or None if it may be one.

        NotADirectory when an ancestor of ``key`` is an object, IsADirectory
        when objects live below ``key``. This form asks the backend: a stat of
        every ancestor and a one-entry listing under ``key/``, all at once, so
        it costs one round trip. It is not atomic with anything that follows;
        backends with transactions check inside the write instead.
        """
        parents = ancestors(key)
        below, *found = await asyncio.gather(
            self._has_objects_below(key), *(self._is_object(parent) for parent in parents)
        )
        for parent, is_object in zip(parents, found, strict=True):
            if is_object:
                return not_a_directory(key, parent)
        return is_a_directory(key) if below else None

    async def looked_up(self, key: str, attempt: Awaitable[T]) -> T:
        """Await ``attempt`` (a stat or the opening read of ``key``); a miss comes out as Missing.

        The Missing carries what ``path_conflict`` says about ``key``, so the
        server can answer a directory or a key below a file. This form asks
        only after the miss (a second round trip, paid by missing keys
        alone); a backend that learned it in the same request has raised
        Missing already, and the object stores ask beside the attempt
        (``object_store.answers.looked_up_beside``).
        """
        try:
            return await attempt
        except Missing:
            raise
        except NotFound as exc:
            raise Missing(key, await self.path_conflict(key)) from exc

    async def probe(self, key: str) -> ObjectMeta | Kind:
        """What the ``os.path`` predicates need: a file's metadata, a directory, or nothing.

        Unlike ``stat`` it need not say whether a parent is a file
        (``exists``, ``isfile`` and ``isdir`` answer False either way), so a
        backend can answer from fewer requests; the metadata may lack the
        content type. This form: a stat, then on a miss a one-entry listing
        under ``key/``.
        """
        try:
            return await self.stat(key)
        except NotADirectory:
            return Kind.MISSING  # a local disk's stat below a file says so
        except NotFound as exc:
            if isinstance(exc, Missing):
                below = isinstance(exc.conflict, IsADirectory)
            else:
                below = await self._has_objects_below(key)
        return Kind.DIRECTORY if below else Kind.MISSING

    async def check_path(self, key: str) -> None:
        """Raise what ``path_conflict`` finds; called before a write that is not known to be an overwrite."""
        conflict = await self.path_conflict(key)
        if conflict is not None:
            raise conflict

    async def _has_objects_below(self, key: str) -> bool:
        page = await self.list(key + "/", delimiter="/", limit=1)
        return bool(page.entries or page.prefixes)

    async def _is_object(self, key: str) -> bool:
        try:
            await self.stat(key)
        except (NotFound, NotADirectory):
            return False
        return True

    # -- idempotent retries (see idempotency) -----------------------------

    async def applied_write(self, key: str, request_id: str) -> ObjectMeta | None:
        """What request ``request_id`` wrote at ``key``, if the backend knows it did.

        The current metadata when the current content is its write; its own
        revision (no longer current) when a backend that remembers recent
        writes (``replaced``) finds it replaced since.

        Asked only after a write, append or rename failed its condition or
        found its source gone. A backend that stores the id of the last
        request that changed an object overrides this; the default knows
        nothing, and the failure stands.
        """
        return None

    async def applied_delete(self, key: str, request_id: str) -> bool:
        """Whether request ``request_id`` deleted ``key`` (asked after a 404 or 409)."""
        return False

    # -- optional operations ---------------------------------------------

    async def append(self, key: str, body: AsyncIterator[bytes]) -> ObjectMeta:
        """Append ``body`` to ``key`` (creating it); needs Capability.APPEND."""
        raise Unsupported(f"{self.name} cannot append", key=key)

    async def copy(self, source: str, target: str) -> ObjectMeta:
        """Copy ``source`` to ``target``; streams through the core unless overridden."""
        stream = await self.read(source)
        try:
            return await self.write(
                target, stream.chunks, size=stream.meta.size, content_type=stream.meta.content_type
            )
        finally:
            await stream.aclose()

    async def rename(self, source: str, target: str) -> ObjectMeta:
        """Move ``source`` to ``target``: copy then delete unless the backend has better."""
        meta = await self.copy(source, target)
        await self.delete(source)
        return meta

    async def get_xattrs(self, key: str) -> dict[str, str]:
        """Every readable attribute of ``key`` (names without ``user.asya.``)."""
        meta = await self.stat(key)
        attrs = {"etag": meta.etag}
        if meta.content_type is not None:
            attrs["content_type"] = meta.content_type
        return attrs

    async def get_xattr(self, key: str, name: str) -> str:
        attrs = await self.get_xattrs(key)
        try:
            return attrs[name]
        except KeyError:
            raise NoSuchAttribute(f"{key!r} has no attribute user.asya.{name}", key=key) from None

    async def set_xattr(self, key: str, name: str, value: str) -> None:
        """Set a writable attribute; the server has already checked ``writable_xattrs``."""
        raise Unsupported(f"{self.name} cannot set user.asya.{name}", key=key)

    async def remove_xattr(self, key: str, name: str) -> None:
        raise Unsupported(f"{self.name} cannot remove user.asya.{name}", key=key)

    def describe(self) -> Mapping[str, object]:
        """What ``GET /v1/info`` reports."""
        return {
            "connector": self.name,
            "capabilities": sorted(c.value for c in self.capabilities),
            "writable_xattrs": sorted(self.writable_xattrs),
            "max_object_size": self.max_object_size,
        }
