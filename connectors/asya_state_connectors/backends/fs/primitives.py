"""Filesystem primitives of the local-directory connector.

Owns: the fs error table (errno -> ConnectorError), revisions derived from
``stat``, the directory ``flock`` that serialises check-and-rename across
processes (and the ordered pair of them a rename takes), finishing and discarding temporary files, the content type kept
in a ``user.asya.*`` extended attribute, and small directory helpers.

Must not: know about keys, prefixes or the connector interface's semantics
(see ``fs.backend``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ... import idempotency
from ...errors import (
    BackendError,
    ConnectorError,
    IsADirectory,
    NameTooLong,
    NoSpace,
    NotADirectory,
    NotFound,
    PermissionDenied,
    TooLarge,
)
from ...keys import RESERVED_SEGMENT_PREFIX

CONTENT_TYPE_XATTR = "user.asya.content_type"
# The file's recent writes (see idempotency.remember), newest first: a retry
# of one of them that fails its condition finds its own id here and succeeds.
REQUEST_XATTR = "user.asya.request"


def map_os_error(exc: OSError, key: str) -> ConnectorError:
    """The fs backend's error table: every OSError of the local filesystem goes through it."""
    number = exc.errno
    if number == errno.ENOENT:
        return NotFound(f"no object at {key!r}", key=key)
    # EEXIST: objects are never created exclusively here, so it can only come
    # from making the directories of a key where one of them is a file.
    if number in (errno.ENOTDIR, errno.EEXIST):
        return NotADirectory(f"a parent of {key!r} is a file, not a directory", key=key)
    if number == errno.EISDIR:
        return IsADirectory(f"{key!r} is a directory", key=key)
    if number == errno.ENAMETOOLONG:
        return NameTooLong(f"a name in {key!r} is too long for this filesystem", key=key)
    if number in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDenied(f"permission denied for {key!r}: {exc.strerror}", key=key)
    if number == errno.EFBIG:
        return TooLarge(f"{key!r} is larger than this filesystem allows", key=key)
    if number in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(f"no room to store {key!r}: {exc.strerror}", key=key)
    return BackendError(f"filesystem error on {key!r}: {exc.strerror}", key=key)


@contextlib.contextmanager
def os_errors(key: str) -> Iterator[None]:
    """Inside, an OSError of the filesystem becomes the ConnectorError ``map_os_error`` names."""
    try:
        yield
    except OSError as exc:
        raise map_os_error(exc, key) from exc


def etag_of(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


class LockBusy(Exception):
    """A directory lock asked for without waiting is held by another writer."""


class DirLock:
    """An exclusive flock on a directory: serialises check-and-rename across processes.

    With ``wait=False`` a lock held elsewhere raises ``LockBusy`` at once, so
    a caller on the event loop can retry in a worker thread instead of
    blocking the loop (and the request holding the lock with it).
    """

    def __init__(self, directory: Path, *, wait: bool = True) -> None:
        self._fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise LockBusy(str(directory)) from None
        except BaseException:
            os.close(self._fd)
            raise

    def names(self, directory: Path) -> bool:
        """Whether ``directory`` still names the directory this lock holds.

        An empty directory can be removed (and made again) by a delete
        pruning it between our open and our flock; a lock on the removed one
        guards nothing.
        """
        try:
            current = os.stat(directory)
        except FileNotFoundError:
            return False
        held = os.fstat(self._fd)
        return (current.st_ino, current.st_dev) == (held.st_ino, held.st_dev)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


class DirLocks:
    """The locks of several directories, taken in one fixed order (sorted by path).

    Two holders of overlapping sets (renames in opposite directions) take
    their common directories in the same order, so neither can hold one the
    other waits for while waiting for one the other holds. A directory named
    twice is locked once. A directory that is gone, or was replaced while
    its lock was awaited, raises FileNotFoundError with nothing held: the
    caller looks again. ``wait`` is DirLock's.
    """

    def __init__(self, directories: Iterable[Path], *, wait: bool = True) -> None:
        self._held: list[DirLock] = []
        try:
            for directory in sorted(set(directories), key=str):
                lock = DirLock(directory, wait=wait)
                self._held.append(lock)
                if not lock.names(directory):
                    raise FileNotFoundError(errno.ENOENT, "directory replaced", str(directory))
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        while self._held:
            self._held.pop().release()


async def gather_head(
    body: AsyncIterator[bytes], limit: int
) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """Read up to ``limit`` bytes; return them and the rest of the body, or None if it ended."""
    parts: list[bytes] = []
    total = 0
    iterator = aiter(body)
    while total <= limit:
        try:
            chunk = await anext(iterator)
        except StopAsyncIteration:
            return b"".join(parts), None
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts), iterator


def finish_temp(handle: IO[bytes], content_type: str | None, *, fsync: bool) -> os.stat_result:
    """Flush and close a finished temporary file, tagging its content type first."""
    handle.flush()
    try:
        if content_type:
            write_content_type(handle.fileno(), content_type)
    except OSError as exc:
        # A filesystem without user xattrs still stores the data.
        if exc.errno != errno.ENOTSUP:
            raise
    if fsync:
        os.fsync(handle.fileno())
    st = os.fstat(handle.fileno())
    handle.close()
    return st


def discard(tmp: Path, handle: IO[bytes]) -> None:
    handle.close()
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()


def read_recent(target: str | Path) -> str | None:
    """The recent writes of the file at ``target`` (see idempotency.remember), if any."""
    try:
        return os.getxattr(target, REQUEST_XATTR).decode("ascii", "replace")
    except OSError:
        return None


def carry_recent(previous: str | None, path: str | Path, st: os.stat_result) -> None:
    """Record the request being served as the writer of ``path`` (made as ``st``), after ``previous``.

    Called under the directory lock, with ``previous`` read from the file
    about to be replaced, so the list is exact. An attribute leaves the
    etag (inode, mtime, size) as it was.
    """
    recent = idempotency.remember(previous, idempotency.current(), etag_of(st), st.st_size)
    if recent is None:
        return
    try:
        os.setxattr(path, REQUEST_XATTR, recent.encode())
    except OSError as exc:
        # A filesystem without user xattrs still stores the data.
        if exc.errno != errno.ENOTSUP:
            raise


def read_content_type(target: str | Path | int) -> str | None:
    try:
        return os.getxattr(target, CONTENT_TYPE_XATTR).decode("utf-8", "replace")
    except OSError:
        return None


def write_content_type(target: Path | int, value: str) -> None:
    os.setxattr(target, CONTENT_TYPE_XATTR, value.encode("utf-8"))


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def has_files(directory: Path) -> bool:
    """Whether a directory holds at least one object, at any depth (stops at the first)."""
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                if entry.name.startswith(RESERVED_SEGMENT_PREFIX):
                    continue
                if entry.is_file(follow_symlinks=False):
                    return True
                if entry.is_dir(follow_symlinks=False) and has_files(Path(entry.path)):
                    return True
    except OSError:
        return False
    return False


# Under the mount's root, hidden like temporary files: one small file per
# request id, its mtime the moment it was made, holding NUL-separated fields
# (keys never contain NUL): kind (w: a write, append or rename made ``key``
# at ``etag``; d: a delete of ``key`` at ``etag``), etag, size, the path
# (relative to the root) whose disappearance proves a write happened (the
# temporary file it renames, or a rename's source; empty for a delete), and
# the key. It is made under the directory lock *before* the change, so a
# process killed at any instant leaves either no change or a record of it:
# a record whose write never happened still names its temporary file.
RECORDS_DIR = RESERVED_SEGMENT_PREFIX + "requests"


@dataclass(frozen=True)
class Record:
    """What a request with an id did (see RECORDS_DIR)."""

    kind: str
    etag: str
    size: int
    pending: str
    key: str


def write_record(records: Path, request_id: str, record: Record) -> None:
    """Record what request ``request_id`` is about to do (see RECORDS_DIR)."""
    fields = (record.kind, record.etag, str(record.size), record.pending, record.key)
    line = "\0".join(fields).encode()
    path = records / request_id
    for attempt in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except FileNotFoundError:
            if attempt:
                raise
            records.mkdir(parents=True, exist_ok=True)
            continue
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return


def forget_record(records: Path, request_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(records / request_id)


def read_record(records: Path, request_id: str, now: float) -> Record | None:
    """What ``request_id`` recorded, if it did so within the window."""
    try:
        with open(records / request_id, "rb") as handle:
            made = os.fstat(handle.fileno()).st_mtime
            fields = handle.read().decode("utf-8", "replace").split("\0")
    except OSError:
        return None
    if idempotency.expired(made, now) or len(fields) != 5 or not fields[2].isdigit():
        return None
    kind, etag, size, pending, key = fields
    return Record(kind, etag, int(size), pending, key)


def sweep_records(records: Path, now: float) -> int:
    """Delete the records made before the window; returns how many."""
    removed = 0
    try:
        scan = list(os.scandir(records))
    except FileNotFoundError:
        return 0
    for entry in scan:
        with contextlib.suppress(OSError):  # another connector swept it first
            if idempotency.expired(entry.stat(follow_symlinks=False).st_mtime, now):
                os.unlink(entry.path)
                removed += 1
    return removed
