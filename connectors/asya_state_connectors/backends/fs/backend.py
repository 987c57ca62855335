"""``fs-buffered-lww`` / ``fs-buffered-cas``: objects as files in a local directory or PVC.

Owns: the embedded default backend. Objects are files under
``STATE_DIR/STATE_PREFIX``; the key's ``/`` segments are directories.

- Atomic writes: the body goes to a temporary file beside the target
  (``.asya-tmp-*``, hidden from listings) and is renamed over it, so a reader
  sees the old or the new file, never a partial one, and a crash mid-write
  leaves the old version.
- Revisions: the ETag is derived from inode, mtime and size; every write
  makes a new inode, so it changes on every write without storing anything.
- Idempotent retries: every write, append, rename and delete of a request
  with an id leaves a record of it, a small file named by the id under
  ``<root>/.asya-tmp-requests/`` (``fs.primitives.RECORDS_DIR``), made
  under the directory lock just before the rename or unlink it describes,
  naming what that step makes disappear (the temporary file, the rename's
  source, the deleted revision): a process killed between the two leaves a
  record that proves nothing, never a change without a record. A retried
  write, create, append or rename whose first attempt was applied finds it
  and succeeds with its own revision, also when other writers have
  replaced or deleted the file since; a retried append appends nothing; a
  retried delete is answered as done. Records count for
  ``idempotency.RECORD_SECONDS``; a sweep (each connector, about that
  often) deletes older ones. The file's ``user.asya.request`` attribute
  also lists its last eight writes (carried forward under the lock), which
  answers the common retry without opening a record.
- CAS across processes: a conditional check and its rename run under an
  exclusive ``flock`` on the parent directory. Every writer takes it, so an
  LWW writer cannot slip between a CAS writer's check and rename. A rename
  of one key to another takes the locks of both parents, in path order (so
  renames in opposite directions cannot deadlock), and checks the source
  under them.
- ``content_type`` is a ``user.asya.content_type`` extended attribute set on
  the temporary file before the rename, so it lands atomically with the data.
- Files and directories come from the filesystem itself: a directory at
  the key fails the rename (EISDIR), a file as a parent fails the temporary
  file (ENOTDIR). Every OSError goes through ``fs.primitives.map_os_error``, so a
  full disk is ``no_space`` (507) and a name over the filesystem's limit
  ``name_too_long``.
- ``STATE_FSYNC=true`` also fsyncs data and directory (survives power loss,
  slower); without it a process crash still never exposes a partial file.
- A writer killed mid-write leaves a hidden temporary file; listings never
  show it, and the connector removes those older than an hour when it starts.
- Small operations run on the event loop (inline I/O): stat, opening a read
  and its first 256 KiB, writes of up to 256 KiB, renames, deletes. A hop to
  a worker thread and back costs two thread wake-ups, far more than these
  calls take when the page cache serves them (as nginx serves files by
  default). A directory lock held by another writer is never waited for on
  the loop: the call is retried in a worker thread. Larger transfers,
  listings of an existing directory, fsyncs and appends always run in worker
  threads. ``STATE_FS_INLINE_IO=false`` sends everything to worker threads,
  for network filesystems whose metadata calls can take milliseconds.

Must not: follow keys outside the root (keys are validated before they get here).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat as stat_mod
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, Self, TypeVar

from ... import idempotency
from ...errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    Conflict,
    ConnectorError,
    IsADirectory,
    NotFound,
    TooLarge,
    Unsupported,
)
from ...interface import (
    UNCONDITIONAL,
    Capability,
    Connector,
    ListPage,
    ObjectMeta,
    RangeSpec,
    ReadStream,
    WriteCondition,
    is_a_directory,
)
from ...keys import RESERVED_SEGMENT_PREFIX
from ...listing import paginate
from ...settings import Settings
from .primitives import (
    CONTENT_TYPE_XATTR,
    RECORDS_DIR,
    DirLock,
    DirLocks,
    LockBusy,
    Record,
    carry_recent,
    discard,
    etag_of,
    finish_temp,
    forget_record,
    fsync_dir,
    gather_head,
    has_files,
    map_os_error,
    os_errors,
    read_content_type,
    read_recent,
    read_record,
    sweep_records,
    write_content_type,
    write_record,
)

CHUNK = 256 * 1024
# Bodies up to this size are gathered in memory and committed in one call
# (on the event loop up to INLINE_BODY with inline I/O on, else in a worker
# thread); larger ones stream to the temporary file chunk by chunk.
SMALL_BODY = 1024 * 1024
INLINE_BODY = CHUNK
# A temporary file untouched this long belongs to a writer that died.
STALE_TEMP_SECONDS = 3600.0

T = TypeVar("T")
log = logging.getLogger("asya_state_connectors.fs")


class _FsConnector(Connector):
    writable_xattrs = frozenset({"content_type"})
    idempotent_retries = frozenset({"write", "create", "append", "rename", "delete", "replaced"})

    def __init__(
        self, root: Path, *, fsync: bool, max_object_size: int | None, inline_io: bool = True
    ) -> None:
        self.root = root
        self.fsync = fsync
        self.max_object_size = max_object_size
        self.inline_io = inline_io
        self.records = root / RECORDS_DIR
        self._sweeper = idempotency.RecordSweeper(self.sweep_records, self.name)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        base = Path(
            settings.required("STATE_DIR", hint="the directory that holds the state")
        ).absolute()
        root = base / settings.prefix if settings.prefix else base
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"STATE_DIR {base} cannot be used: {exc.strerror}") from exc
        limit = settings.integer("STATE_MAX_OBJECT_BYTES", 0, minimum=0) or None
        return cls(
            root,
            fsync=settings.flag("STATE_FSYNC", False),
            max_object_size=limit,
            inline_io=settings.flag("STATE_FS_INLINE_IO", True),
        )

    async def _run(self, call: Callable[[bool], T], *, inline: bool = True) -> T:
        """``call(wait)`` on the event loop, or in a worker thread when it may block.

        On the loop ``wait`` is False: a directory lock held elsewhere raises
        LockBusy instead of stalling every request, and the call is retried
        from the start in a worker thread, where waiting is harmless.
        """
        if inline and self.inline_io:
            try:
                return call(False)
            except LockBusy:
                pass
        return await asyncio.to_thread(call, True)

    # -- paths ------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root / key

    def _meta(self, key: str, st: os.stat_result, path: str | Path | int) -> ObjectMeta:
        return ObjectMeta(
            key=key,
            size=st.st_size,
            etag=etag_of(st),
            content_type=read_content_type(path),
            last_modified=st.st_mtime,
        )

    # -- stat and read ------------------------------------------------------

    def _stat_sync(self, key: str) -> ObjectMeta:
        path = self._path(key)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise map_os_error(exc, key) from exc
        if not stat_mod.S_ISREG(st.st_mode):
            raise NotFound(f"no object at {key!r}", key=key)
        return self._meta(key, st, path)

    async def stat(self, key: str) -> ObjectMeta:
        return await self._run(lambda wait: self._stat_sync(key))

    def _open_sync(
        self, key: str, byte_range: RangeSpec | None
    ) -> tuple[IO[bytes], ObjectMeta, int, int, bytes]:
        handle = open(self._path(key), "rb")  # noqa: SIM115 - closed by the read stream
        try:
            st = os.fstat(handle.fileno())
            if not stat_mod.S_ISREG(st.st_mode):
                raise NotFound(f"no object at {key!r}", key=key)
            meta = self._meta(key, st, handle.fileno())
            start, length = (
                (0, st.st_size) if byte_range is None else byte_range.resolve(st.st_size, key)
            )
            handle.seek(start)
            first = handle.read(min(length, CHUNK))
            return handle, meta, start, length, first
        except BaseException:
            handle.close()
            raise

    async def read(self, key: str, byte_range: RangeSpec | None = None) -> ReadStream:
        # The open descriptor pins the inode: a concurrent rename cannot mix versions.
        with os_errors(key):
            handle, meta, start, length, first = await self._run(
                lambda wait: self._open_sync(key, byte_range)
            )

        async def chunks() -> AsyncIterator[bytes]:
            try:
                remaining = length - len(first)
                if first:
                    yield first
                while remaining > 0:
                    with os_errors(key):
                        chunk = await asyncio.to_thread(handle.read, min(remaining, CHUNK))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    yield chunk
            finally:
                handle.close()

        return ReadStream(meta, start, length, chunks())

    # -- write ------------------------------------------------------------

    async def write(
        self,
        key: str,
        body: AsyncIterator[bytes],
        *,
        size: int | None = None,
        condition: WriteCondition = UNCONDITIONAL,
        content_type: str | None = None,
    ) -> ObjectMeta:
        # A directory in the way or a file as a parent needs no look of its
        # own: creating the temporary file (ENOTDIR) and the rename over the
        # key (EISDIR) report them, and the table maps every errno.
        with os_errors(key):
            return await self._write(key, body, condition, content_type)

    async def _write(
        self,
        key: str,
        body: AsyncIterator[bytes],
        condition: WriteCondition,
        content_type: str | None,
    ) -> ObjectMeta:
        head, rest = await gather_head(body, SMALL_BODY)
        self._enforce_limit(key, len(head))
        if rest is None:
            return await self._run(
                lambda wait: self._write_small_sync(key, head, condition, content_type, wait),
                inline=len(head) <= INLINE_BODY and not self.fsync,
            )
        tmp, handle = await asyncio.to_thread(self._create_temp, key)
        committed = False
        try:
            written = len(head)
            await asyncio.to_thread(handle.write, head)
            async for chunk in rest:
                written += len(chunk)
                self._enforce_limit(key, written)
                await asyncio.to_thread(handle.write, chunk)
            meta = await asyncio.to_thread(self._commit, key, tmp, handle, condition, content_type)
            committed = True
            return meta
        finally:
            if not committed:
                await asyncio.to_thread(discard, tmp, handle)

    def _enforce_limit(self, key: str, size: int) -> None:
        if self.max_object_size is not None and size > self.max_object_size:
            raise TooLarge(f"object exceeds {self.max_object_size} bytes", key=key)

    def _write_small_sync(
        self,
        key: str,
        data: bytes,
        condition: WriteCondition,
        content_type: str | None,
        wait: bool,
    ) -> ObjectMeta:
        tmp, handle = self._create_temp(key)
        try:
            handle.write(data)
            return self._commit(key, tmp, handle, condition, content_type, wait=wait)
        except BaseException:
            discard(tmp, handle)
            raise

    def _create_temp(self, key: str) -> tuple[Path, IO[bytes]]:
        target = self._path(key)
        tmp = target.parent / f"{RESERVED_SEGMENT_PREFIX}{uuid.uuid4().hex}"
        for attempt in range(5):
            try:
                # Most writes go to an existing directory: try that first rather
                # than pay a failing mkdir and a stat on every write.
                if attempt:
                    target.parent.mkdir(parents=True, exist_ok=True)
                return tmp, open(tmp, "xb")
            except FileNotFoundError:
                continue  # no directory yet, or a concurrent delete pruned it
        raise BackendError(f"could not create a temporary file for {key!r}", key=key)

    def _commit(
        self,
        key: str,
        tmp: Path,
        handle: IO[bytes],
        condition: WriteCondition,
        content_type: str | None,
        *,
        wait: bool = True,
    ) -> ObjectMeta:
        """Publish the finished temporary file as ``key`` if ``condition`` holds."""
        target = self._path(key)
        try:
            st = finish_temp(handle, content_type, fsync=self.fsync)
            lock = DirLock(target.parent, wait=wait)
            try:
                self._check_condition(key, target, condition)
                carry_recent(read_recent(target), tmp, st)
                self._renamed_over(key, tmp, target, st)
            finally:
                lock.release()
            if self.fsync:
                fsync_dir(target.parent)
        except OSError as exc:
            raise map_os_error(exc, key) from exc
        return ObjectMeta(
            key=key,
            size=st.st_size,
            etag=etag_of(st),
            content_type=content_type or None,
            last_modified=st.st_mtime,
        )

    async def applied_write(self, key: str, request_id: str) -> ObjectMeta | None:
        return await asyncio.to_thread(self._applied_sync, key, request_id)

    def _applied_sync(self, key: str, request_id: str) -> ObjectMeta | None:
        """What request ``request_id`` wrote at ``key``, if it is among the file's recent writes.

        Its own revision, also when another writer has replaced it since:
        the write happened, and a condition based on it must now fail.
        """
        written = idempotency.find(read_recent(self._path(key)), request_id)
        if written is None:
            record = read_record(self.records, request_id, time.time())
            if record is None or record.kind != "w" or record.key != key:
                return None
            if record.pending and os.path.lexists(self.root / record.pending):
                return None  # recorded, then killed before its rename: never applied
            written = record.etag, record.size
        etag, size = written
        try:
            current = self._stat_sync(key)
        except NotFound:
            current = None
        if current is not None and current.etag == etag:
            return current
        return ObjectMeta(key=key, size=size, etag=etag)

    def _check_condition(self, key: str, target: Path, condition: WriteCondition) -> None:
        if condition.unconditional:
            return  # a directory at the key makes the rename fail with EISDIR
        try:
            current = os.stat(target)
        except FileNotFoundError:
            current = None
        if current is not None and stat_mod.S_ISDIR(current.st_mode):
            raise IsADirectory(f"{key!r} is a directory", key=key)
        if condition.if_none_match and current is not None:
            raise Conflict(f"{key!r} already exists", key=key)
        if condition.if_match is not None and (
            current is None or etag_of(current) != condition.if_match
        ):
            raise Conflict(f"{key!r} changed since it was read", key=key)

    async def append(self, key: str, body: AsyncIterator[bytes]) -> ObjectMeta:
        with os_errors(key):
            return await self._append(key, body)

    async def _append(self, key: str, body: AsyncIterator[bytes]) -> ObjectMeta:
        tmp, handle = await asyncio.to_thread(self._create_temp, key)
        committed = False
        try:
            lock = await asyncio.to_thread(DirLock, self._path(key).parent)
            try:
                request_id = idempotency.current()
                if request_id is not None:
                    # A retry of an append that was applied: append nothing twice.
                    applied = await asyncio.to_thread(self._applied_sync, key, request_id)
                    if applied is not None:
                        return applied
                # Copy-on-append under the directory lock: readers see the old
                # or the new file, and concurrent appends serialise.
                content_type = await asyncio.to_thread(self._copy_current, key, handle)
                written = handle.tell()
                async for chunk in body:
                    written += len(chunk)
                    self._enforce_limit(key, written)
                    await asyncio.to_thread(handle.write, chunk)
                meta = await asyncio.to_thread(self._publish_locked, key, tmp, handle, content_type)
                committed = True
                return meta
            finally:
                await asyncio.to_thread(lock.release)
        finally:
            if not committed:
                await asyncio.to_thread(discard, tmp, handle)

    def _copy_current(self, key: str, handle: IO[bytes]) -> str | None:
        try:
            with open(self._path(key), "rb") as current:
                content_type = read_content_type(current.fileno())
                while chunk := current.read(CHUNK * 4):
                    handle.write(chunk)
                return content_type
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise map_os_error(exc, key) from exc

    def _publish_locked(
        self, key: str, tmp: Path, handle: IO[bytes], content_type: str | None
    ) -> ObjectMeta:
        st = finish_temp(handle, content_type, fsync=self.fsync)
        target = self._path(key)
        carry_recent(read_recent(target), tmp, st)
        self._renamed_over(key, tmp, target, st)
        return ObjectMeta(
            key=key,
            size=st.st_size,
            etag=etag_of(st),
            content_type=content_type,
            last_modified=st.st_mtime,
        )

    async def rename(self, source: str, target: str) -> ObjectMeta:
        return await self._run(
            lambda wait: self._rename_sync(source, target, wait), inline=not self.fsync
        )

    def _rename_sync(self, source: str, target: str, wait: bool) -> ObjectMeta:
        src, dst = self._path(source), self._path(target)
        if not src.is_file():  # before making the target's directories for nothing
            raise NotFound(f"no object at {source!r}", key=source)
        pin: tuple[Path, IO[bytes]] | None = None
        renamed = False
        try:
            if dst.parent != src.parent:
                # A hidden file holds the target's directory in place: a delete
                # prunes an empty directory without its lock, and a writer could
                # then make a new one and lock that instead of the one we hold.
                # (The source's directory holds the source.)
                with os_errors(target):  # a file where a parent of the target should be
                    pin = self._create_temp(target)
                pin[1].close()
            meta = self._rename_locked(source, target, src, dst, wait)
            renamed = True
        finally:
            if pin is not None:
                discard(*pin)
                if not renamed:
                    self._prune(dst.parent)  # made for a rename that did not happen
        if self.fsync:
            try:
                for directory in {src.parent, dst.parent}:
                    fsync_dir(directory)
            except OSError as exc:
                raise map_os_error(exc, target) from exc
        self._prune(src.parent)
        return meta

    def _rename_locked(
        self, source: str, target: str, src: Path, dst: Path, wait: bool
    ) -> ObjectMeta:
        """Rename under the locks of both parents: no writer is between its check and rename."""
        for _ in range(5):
            try:
                locks = DirLocks((src.parent, dst.parent), wait=wait)
            except FileNotFoundError:
                # The source's directory was pruned, or replaced while its lock
                # was awaited: look again.
                if not src.is_file():
                    raise NotFound(f"no object at {source!r}", key=source) from None
                continue
            except OSError as exc:
                raise map_os_error(exc, source) from exc
            try:
                if not src.is_file():
                    raise NotFound(f"no object at {source!r}", key=source)
                previous = read_recent(dst)
                moved = os.stat(src)
                # Renaming keeps the inode, mtime and size: the etag is known before.
                self._record(
                    Record("w", etag_of(moved), moved.st_size, self._relative(src), target)
                )
                try:
                    os.rename(src, dst)
                except OSError:
                    self._forget_record()
                    raise
                st = os.stat(dst)
                # The target's list goes on (a retried rename finds its id there).
                carry_recent(previous, dst, st)
                return self._meta(target, st, dst)
            except OSError as exc:
                raise map_os_error(exc, source) from exc
            finally:
                locks.release()
        raise BackendError(f"the directory of {source!r} kept changing during a rename", key=source)

    # -- delete -----------------------------------------------------------

    async def delete(self, key: str, *, condition: WriteCondition = UNCONDITIONAL) -> None:
        await self._run(lambda wait: self._delete_sync(key, condition, wait))

    def _delete_sync(self, key: str, condition: WriteCondition, wait: bool) -> None:
        target = self._path(key)
        try:
            lock = DirLock(target.parent, wait=wait)
        except OSError as exc:
            raise map_os_error(exc, key) from exc
        try:
            if not target.is_file():
                raise NotFound(f"no object at {key!r}", key=key)
            self._check_condition(key, target, condition)
            # Before the unlink: a process killed right after it still leaves
            # what the retry looks for.
            self._record(Record("d", etag_of(os.stat(target)), 0, "", key))
            try:
                os.unlink(target)
            except OSError:
                self._forget_record()
                raise
        except OSError as exc:
            raise map_os_error(exc, key) from exc
        finally:
            lock.release()
        self._prune(target.parent)

    def _relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def _renamed_over(self, key: str, tmp: Path, target: Path, st: os.stat_result) -> None:
        """Rename the finished ``tmp`` over ``target``, recorded first (under the directory lock)."""
        self._record(Record("w", etag_of(st), st.st_size, self._relative(tmp), key))
        try:
            os.rename(tmp, target)
        except OSError:
            self._forget_record()
            raise

    def _record(self, record: Record) -> None:
        """Record what the request being served is about to do, when it has an id (RECORDS_DIR)."""
        request_id = idempotency.current()
        if request_id is None:
            return
        try:
            write_record(self.records, request_id, record)
        except OSError as exc:
            # The change goes ahead: failing it now for want of a record would
            # refuse a good write. Its retry then has the list to go on.
            log.warning("could not record request %s on %r: %s", request_id, record.key, exc)

    def _forget_record(self) -> None:
        """The recorded change failed: its record must not answer a retry."""
        request_id = idempotency.current()
        if request_id is not None:
            with contextlib.suppress(OSError):
                forget_record(self.records, request_id)

    async def applied_delete(self, key: str, request_id: str) -> bool:
        return await asyncio.to_thread(self._deleted_sync, key, request_id)

    def _deleted_sync(self, key: str, request_id: str) -> bool:
        record = read_record(self.records, request_id, time.time())
        if record is None or record.kind != "d" or record.key != key:
            return False
        try:
            current = os.stat(self._path(key))
        except FileNotFoundError:
            return True
        except OSError:
            return False
        # Still the revision it recorded: killed before its unlink, never deleted.
        return etag_of(current) != record.etag

    def _prune(self, directory: Path) -> None:
        """Remove directories emptied by a delete, up to the root: a prefix with no objects is gone."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    # -- list -------------------------------------------------------------

    async def list(
        self,
        prefix: str,
        *,
        delimiter: str | None = "/",
        page_token: str | None = None,
        limit: int = 1000,
    ) -> ListPage:
        if self.inline_io and not self._may_list_something(prefix):
            # The server asks this of every missing key (is it a directory?):
            # one stat on the loop answers it without a worker-thread hop.
            return ListPage([], [])
        with os_errors(prefix):
            return await asyncio.to_thread(self._list_sync, prefix, delimiter, page_token, limit)

    async def path_conflict(self, key: str) -> ConnectorError | None:
        # A file as a parent needs no look: the filesystem answered ENOTDIR
        # (NotADirectory) before anything asks. Only objects below remain.
        return is_a_directory(key) if await self._has_objects_below(key) else None

    def _may_list_something(self, prefix: str) -> bool:
        try:
            return stat_mod.S_ISDIR(os.stat(self._listing_dir(prefix)).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError:
            return True  # the listing itself reports it, mapped

    def _listing_dir(self, prefix: str) -> Path:
        """The directory that holds every key starting with ``prefix``."""
        head = prefix.rpartition("/")[0]
        return self.root / head if head else self.root

    def _list_sync(
        self, prefix: str, delimiter: str | None, page_token: str | None, limit: int
    ) -> ListPage:
        head, _, partial = prefix.rpartition("/")
        start = self._listing_dir(prefix)
        walk = self._walk(start, f"{head}/" if head else "", partial, recursive=not delimiter)
        return paginate(
            walk,
            lambda item: item[0],
            # The scan's own path: rebuilding it from the key costs more than the stat.
            lambda item: self._meta(item[0], item[1], item[2]),
            prefix,
            delimiter=delimiter,
            page_token=page_token,
            limit=limit,
        )

    def _walk(
        self, directory: Path, key_prefix: str, name_prefix: str, *, recursive: bool
    ) -> Iterator[tuple[str, os.stat_result, str]]:
        """(key, stat, path) of files under ``directory``, in key order.

        Directories yield a stand-in entry when not recursing.
        """
        try:
            with os.scandir(directory) as scan:
                found = [
                    e
                    for e in scan
                    if e.name.startswith(name_prefix)
                    and not e.name.startswith(RESERVED_SEGMENT_PREFIX)
                ]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise map_os_error(exc, key_prefix) from exc
        # Sort as keys sort: a directory's keys all continue with "/".
        found.sort(key=lambda e: e.name + "/" if e.is_dir(follow_symlinks=False) else e.name)
        for entry in found:
            key = key_prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if recursive:
                    yield from self._walk(Path(entry.path), key + "/", "", recursive=True)
                elif has_files(Path(entry.path)):
                    # Rolled up by paginate(); the stat is never used.
                    yield key + "/", entry.stat(), entry.path
            elif entry.is_file(follow_symlinks=False):
                try:
                    yield key, entry.stat(), entry.path
                except FileNotFoundError:
                    continue  # deleted while listing

    # -- attributes and health ----------------------------------------------

    async def get_xattrs(self, key: str) -> dict[str, str]:
        attrs = await super().get_xattrs(key)
        attrs["url"] = self._path(key).as_uri()
        return attrs

    async def set_xattr(self, key: str, name: str, value: str) -> None:
        await asyncio.to_thread(self._set_content_type, key, value or None)

    async def remove_xattr(self, key: str, name: str) -> None:
        await asyncio.to_thread(self._set_content_type, key, None)

    def _set_content_type(self, key: str, value: str | None) -> None:
        path = self._path(key)
        try:
            if not path.is_file():
                raise NotFound(f"no object at {key!r}", key=key)
            if value is None:
                with contextlib.suppress(OSError):
                    os.removexattr(path, CONTENT_TYPE_XATTR)
            else:
                write_content_type(path, value)
        except OSError as exc:
            if exc.errno == errno.ENOTSUP:
                raise Unsupported(
                    "this filesystem does not support user extended attributes", key=key
                ) from exc
            raise map_os_error(exc, key) from exc

    async def check_health(self) -> None:
        if not await asyncio.to_thread(os.access, self.root, os.W_OK | os.X_OK):
            raise BackendUnavailable(f"state directory {self.root} is not writable")

    async def open(self) -> None:
        await asyncio.to_thread(self.sweep_stale_temp_files)
        self._sweeper.start()

    async def close(self) -> None:
        await self._sweeper.stop()

    async def sweep_records(self, now: float) -> int:
        """Delete the records of requests older than the window; returns how many."""
        return await asyncio.to_thread(sweep_records, self.records, now)

    def sweep_stale_temp_files(self, max_age: float = STALE_TEMP_SECONDS) -> int:
        """Remove temporary files a killed writer left behind; returns how many.

        Only files untouched for ``max_age`` go: another connector process
        sharing the directory may be writing a fresh one right now.
        """
        cutoff = time.time() - max_age
        removed = 0
        for directory, _, files in os.walk(self.root):
            for name in files:
                if not name.startswith(RESERVED_SEGMENT_PREFIX):
                    continue
                path = os.path.join(directory, name)
                with contextlib.suppress(OSError):
                    if os.stat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
        return removed


class FsBufferedLww(_FsConnector):
    name = "fs-buffered-lww"
    capabilities = frozenset(
        {Capability.CREATE_ONLY, Capability.APPEND, Capability.RANGE_READ, Capability.LAST_MODIFIED}
    )


class FsBufferedCas(_FsConnector):
    name = "fs-buffered-cas"
    capabilities = FsBufferedLww.capabilities | {Capability.CAS}
