"""File objects for state paths, stacked exactly like the real ``open`` stacks them.

Owns: the raw I/O objects (streamed and ranged reads; spooled writes that
commit on close, or stream behind a writer that writes front to back
(write-behind, see SpoolRaw); chunked passthrough uploads), the abort-on-exception
buffered and text wrappers, and ``open_file`` which validates the mode and
arguments like ``io.open`` and picks the raw object for a mode and mount.

A write is committed on ``close()``. If a ``with`` block raises, the file
object's ``__exit__`` aborts instead: nothing is committed and the previous
version stays. ``fileno()`` raises io.UnsupportedOperation, which makes
libraries that try OS-level fast paths (shutil's sendfile copy) fall back to
Python-level reads and writes; numpy's ``tofile``/``fromfile`` have no such
fallback and fail (README shows the ``tobytes``/``frombuffer`` pattern).
A plain-append (``a``) file keeps its position as a local disk does
(``AppendPosition``), so ``tell()`` and ``seek()`` work there too.

Must not: talk HTTP directly (mount_client.py does) or hold a whole object in
memory: reads stream, writes spill to disk above SPILL_THRESHOLD,
passthrough uploads keep only the buffer of the layer above.
"""

from __future__ import annotations

import codecs
import errno
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, cast

from . import mount_client, transport
from .mounts import Target

SPILL_THRESHOLD = 4 * 1024 * 1024
# A buffered ``w``/``x`` file starts streaming to the connector once it holds
# this much (the connectors' default part size), while the handler still writes.
WRITE_BEHIND_AFTER = 8 * 1024 * 1024
# A stream's size is unknown to the connector, which then cuts S3 parts of
# its configured size (8 MiB: at most 10,000 parts, 78 GiB); a file growing
# past this is committed whole on close instead, where its size picks the parts.
WRITE_BEHIND_LIMIT = 64 * 1024 * 1024 * 1024
BUFFER_SIZE = 64 * 1024
# A forward seek of at most this many bytes reads through the open stream
# instead of starting a new ranged request.
SKIP_LIMIT = 64 * 1024
# After this many bytes read in a row, the rest of a file is read as one
# open-ended stream that the connector fans out.
STREAM_AFTER = 8 * 1024 * 1024
_NEWLINES = (None, "", "\n", "\r", "\r\n")
# The standard codecs whose first write starts with a byte-order mark; a text
# layer writes it only at position 0, so appending in them needs the real size.
_BOM_CODECS = frozenset({"utf-16", "utf-32", "utf-8-sig"})


@dataclass(frozen=True)
class ModeSpec:
    kind: str  # one of r, w, x, a
    plus: bool
    binary: bool

    @property
    def raw_mode(self) -> str:
        """The mode string the real FileIO reports for this mode."""
        if self.kind == "w" and self.plus:
            return "rb+"
        return self.kind + "b" + ("+" if self.plus else "")


def parse_mode(
    mode: object, buffering: int, encoding: object, errors: object, newline: object
) -> ModeSpec:
    """Validate ``open`` arguments with the real ``open``'s rules and messages."""
    if not isinstance(mode, str):
        raise TypeError(f"open() argument 'mode' must be str, not {type(mode).__name__}")
    if not isinstance(buffering, int):
        raise TypeError(f"'{type(buffering).__name__}' object cannot be interpreted as an integer")
    chars = set(mode)
    if chars - set("axrwb+t") or len(mode) > len(chars):
        raise ValueError(f"invalid mode: {mode!r}")
    kinds = [c for c in "rwxa" if c in chars]
    if "t" in chars and "b" in chars:
        raise ValueError("can't have text and binary mode at once")
    if len(kinds) != 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    binary = "b" in chars
    if binary:
        for value, what in (
            (encoding, "an encoding"),
            (errors, "an errors"),
            (newline, "a newline"),
        ):
            if value is not None:
                raise ValueError(f"binary mode doesn't take {what} argument")
        if buffering == 1:
            warnings.warn(
                "line buffering (buffering=1) isn't supported in binary mode, "
                "the default buffer size will be used",
                RuntimeWarning,
                3,
            )
    else:
        if buffering == 0:
            raise ValueError("can't have unbuffered text I/O")
        if encoding is not None and not isinstance(encoding, str):
            raise TypeError(
                f"open() argument 'encoding' must be str or None, not {type(encoding).__name__}"
            )
        if errors is not None and not isinstance(errors, str):
            raise TypeError(
                f"open() argument 'errors' must be str or None, not {type(errors).__name__}"
            )
        if newline not in _NEWLINES:
            raise ValueError(f"illegal newline value: {newline!r}")
        if isinstance(encoding, str) and encoding != "locale":
            # An unknown encoding fails before anything is sent ("locale" is
            # TextIOWrapper's own name for the locale's encoding).
            codecs.lookup(encoding)
    return ModeSpec(kinds[0], "+" in chars, binary)


# -- raw objects --------------------------------------------------------------


class AppendPosition:
    """The position of a plain-append (``a``) file, kept as a local disk keeps it.

    Every write of an ``O_APPEND`` file lands at the end whatever the
    position, so the position is bookkeeping: the size of the object when it
    was opened plus the bytes written since, until ``seek`` moves it
    (anywhere; the next write moves it back to the end). logging's
    RotatingFileHandler relies on ``seek(0, 2)`` and ``tell()`` for this. The
    size costs one HEAD, asked the first time a position is needed once the
    file is open; the io layers ask while ``open_file`` stacks them and are
    answered 0 without it (``stacking``), so a plain append costs nothing more.
    """

    def __init__(self, target: Target) -> None:
        self._target = target
        self.stacking = True
        self._size: int | None = None
        self._written = 0
        self._moved: int | None = None

    def learn_size(self) -> int:
        if self._size is None:
            meta = self._target.client.head(self._target.key, self._target.path)
            self._size = 0 if meta is None else meta.size
        return self._size

    def wrote(self, count: int) -> None:
        self._written += count
        self._moved = None

    def tell(self) -> int:
        if self._moved is not None:
            return self._moved
        if self.stacking and self._size is None:
            return self._written
        return self.learn_size() + self._written

    def seek(self, offset: int, whence: int) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self.tell() + offset
        elif whence == io.SEEK_END:
            position = self.learn_size() + self._written + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if position < 0:
            raise OSError(errno.EINVAL, "Invalid argument", self._target.path)
        self._moved = position
        return position


class StateRaw(io.RawIOBase):
    """Common ground of the raw objects: name, mode, abort, and no file descriptor."""

    def __init__(self, target: Target, name: str | bytes, mode: str) -> None:
        super().__init__()
        self.target = target
        self.name = name
        self.mode = mode
        self._aborted = False
        # Set by the raw objects that serve plain append mode.
        self.append_position: AppendPosition | None = None

    def abort(self) -> None:
        """Make ``close()`` commit nothing."""
        self._aborted = True

    def _give_up(self) -> None:
        # A constructor failed: release what was acquired, commit nothing, and
        # leave nothing for the finalizer's close() to do.
        self._aborted = True
        self.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} mode={self.mode!r}>"

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file.")


class ReadRaw(StateRaw):
    """A read of one object: streamed from ``open``, then ranges sized to how it is read.

    Opening streams the whole object (the connector reads ahead of it). A
    seek away gives that stream up; reads after it ask for bounded ranges:
    first exactly what the reader asked for (a buffer's worth, or the size of
    a large read: a zip member, an array), so random access fetches what it
    uses and each range is read to its end, keeping the connection. A reader
    that keeps going in small reads gets ranges that double, and after
    STREAM_AFTER bytes in a row one open-ended stream again, which the
    connector fans out. Every range must carry the revision the file opened
    with, so a file never mixes two versions (``ESTALE`` instead).
    """

    def __init__(self, target: Target, name: str | bytes) -> None:
        super().__init__(target, name, "rb")
        self._reply: transport.Reply | None = None
        self._pos = 0
        self._run = 0  # bytes read in a row since the file opened or last seeked away
        self._ranges = 0  # ranges asked for in this run
        self._last_range = 0
        self._exact = False  # the last range was asked for by one large read
        self._to_end = False  # readall: the rest is wanted whole
        try:
            reply = self._reply = target.client.get(target.key, target.path)
            self._etag = reply.header("ETag")
            size = reply.header("X-Asya-Size") or reply.header("Content-Length")
            if size is None or not size.isdigit():
                raise OSError(
                    errno.EPROTO, "the connector did not report the object size", target.path
                )
            self._size = int(size)
        except BaseException:
            self._give_up()
            raise
        self._ranges = 1  # the opening stream is this run's first

    def readable(self) -> bool:
        self._check_open()
        return True

    def seekable(self) -> bool:
        self._check_open()
        return True

    def readinto(self, buffer: Any) -> int:
        self._check_open()
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        count = 0
        for attempt in range(2):
            try:
                count = self._stream(want).readinto(view[:want])
            except ConnectionError:
                # The connector gave the stream up (the object changed under
                # a range it was fetching, or it restarted): once, ask again
                # from here; the revision check tells which.
                self._drop_stream()
                if attempt:
                    raise
                continue
            if count:
                break
            self._drop_stream()
        if count == 0:
            raise OSError(
                errno.EIO, f"the object ended at byte {self._pos} of {self._size}", self.target.path
            )
        self._pos += count
        self._run += count
        return count

    def readall(self) -> bytes:
        self._check_open()
        data = bytearray()
        self._to_end = True
        try:
            while self._pos < self._size:
                chunk = self.read(min(self._size - self._pos, 1024 * 1024))
                if not chunk:
                    break
                data += chunk
        finally:
            self._to_end = False
        return bytes(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._pos + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if position < 0:
            raise OSError(errno.EINVAL, "Invalid argument", self.target.path)
        if position != self._pos:
            gap = position - self._pos
            reply = self._reply
            left = None if reply is None else reply.remaining
            if reply is not None and 0 < gap <= SKIP_LIMIT and (left is None or gap <= left):
                self._skip(gap)
            else:
                self._drop_stream()
                self._run = self._ranges = 0
        self._pos = position
        return position

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def close(self) -> None:
        if not self.closed:
            self._drop_stream()
        super().close()

    def _skip(self, count: int) -> None:
        scratch = memoryview(bytearray(count))
        while count:
            got = self._stream(count).readinto(scratch[:count])
            if got == 0:
                # The stream ended early; the next read asks for a range instead.
                self._drop_stream()
                return
            count -= got
            self._pos += got

    def _range_length(self, want: int) -> int | None:
        """How much the next range asks for; None for the rest of the object."""
        if self._to_end or self._run >= STREAM_AFTER:
            return None
        if self._ranges == 0 or want > BUFFER_SIZE or self._exact:
            # After a seek, or a reader that asks for exact sizes (a large
            # read, or the buffer refill after one: likely its tail).
            return want
        return max(want, min(2 * self._last_range, STREAM_AFTER))

    def _stream(self, want: int) -> transport.Reply:
        reply = self._reply
        if reply is not None and reply.remaining == 0:
            reply.discard()  # a finished range: its connection is back in the pool
            reply = self._reply = None
        if reply is None:
            length = self._range_length(want)
            if length is not None:
                length = min(length, self._size - self._pos)
            try:
                reply = self.target.client.get(
                    self.target.key, self.target.path, self._pos, length, opening=False
                )
            except FileNotFoundError:
                raise OSError(
                    errno.ESTALE,
                    "the object was removed while it was open for reading; reopen it",
                    self.target.path,
                ) from None
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # A range inside the size the file opened with was refused
                # (416): the object was replaced by a shorter one.
                raise OSError(
                    errno.ESTALE,
                    "the object changed while it was open for reading; reopen it",
                    self.target.path,
                ) from exc
            if reply.header("ETag") != self._etag:
                reply.discard()
                raise OSError(
                    errno.ESTALE,
                    "the object changed while it was open for reading; reopen it",
                    self.target.path,
                )
            self._reply = reply
            self._ranges += 1
            self._last_range = length or 0
            self._exact = want > BUFFER_SIZE
        return reply

    def _drop_stream(self) -> None:
        reply, self._reply = self._reply, None
        if reply is not None:
            reply.discard()


class SpoolRaw(StateRaw):
    """Writes collected in a spooled temporary file and committed in one request on close.

    Serves buffered writes and every ``+`` mode: ``r+``/``a+`` load the
    current object first (so reads and seeks work), ``a`` without ``+``
    keeps only the new bytes and appends them natively when the connector can,
    otherwise it reads, concatenates and writes back conditionally.

    Write-behind: a ``w``/``x`` file (with or without ``+``) that grows past
    WRITE_BEHIND_AFTER starts one chunked upload carrying the condition the
    commit would carry (the revision known then; ``If-None-Match: *`` for
    ``x``) and from then on sends each write as it is made, as a passthrough
    write does, so the object is on its way while the handler still writes;
    the spool keeps the whole file, so reads, seeks and ``tell`` behave as
    before. Sent bytes must stay as sent: a write or truncate reaching
    below what was sent (a seek back and rewrite) gives the upload up, the
    connector discards it, and ``close()`` commits from the spool in one
    request as without write-behind. A raise in a ``with`` block, ``abort``,
    or a failed commit drops the upload: the connector stores nothing of it.
    A conflict the upload met (409) is reported on ``close()``; a lost
    connection (even while finishing, when the outcome is unknown) sends the
    spool again in one request under the same request id, as ``put`` retries.
    """

    def __init__(self, target: Target, name: str | bytes, spec: ModeSpec) -> None:
        super().__init__(target, name, spec.raw_mode)
        self._spec = spec
        if spec.kind == "a" and not spec.plus:
            self.append_position = AppendPosition(target)
        self._create_only: dict[str, str] | None = None
        self._native_append = False
        self._dirty = False
        self._created = False
        # Write-behind (see the class docstring): the upload, how much of the
        # spool it carries, the spool's size, and what the commit reuses.
        self._may_stream = spec.kind in "wx"
        self._behind: transport.Upload | None = None
        self._behind_pid = 0  # a forked child must not send on its parent's connection
        self._sent = 0
        self._end = 0
        self._condition: dict[str, str] | None = None
        self._request_id = mount_client.new_request_id()
        self._conflict: FileExistsError | None = None
        # Owned by this object and closed in close(), so no context manager.
        self._spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=SPILL_THRESHOLD
        )
        try:
            self._prepare()
        except BaseException:
            self._give_up()
            raise

    def _prepare(self) -> None:
        client, key, path = self.target.client, self.target.key, self.target.path
        if self._spec.kind == "x":
            self._create_only = client.create_only_condition(path)
            if client.head(key, path) is not None:
                raise FileExistsError(errno.EEXIST, "File exists", path)
        elif self._spec.kind == "a" and not self._spec.plus:
            self._native_append = client.supports(mount_client.APPEND, path)
        elif self._spec.plus and self._spec.kind in "ra":
            found = _load(self.target, self._spool, missing_ok=self._spec.kind == "a")
            if not found and self._spec.kind == "r":
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
            self._created = not found
            if self._spec.kind == "r":
                self._spool.seek(0)

    def readable(self) -> bool:
        self._check_open()
        return self._spec.plus

    def writable(self) -> bool:
        self._check_open()
        return True

    def seekable(self) -> bool:
        self._check_open()
        return True

    def readinto(self, buffer: Any) -> int:
        self._check_open()
        if not self._spec.plus:
            raise io.UnsupportedOperation("read")
        view = memoryview(buffer).cast("B")
        data = self._spool.read(len(view))
        view[: len(data)] = data
        return len(data)

    def write(self, buffer: Any) -> int:
        self._check_open()
        if self._spec.kind == "a":
            self._spool.seek(0, io.SEEK_END)
        position = self._spool.tell()
        count = self._spool.write(buffer)
        self._dirty = True
        if self.append_position is not None:
            self.append_position.wrote(count)
        if self._may_stream:
            self._write_behind(position, buffer, count)
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if self.append_position is not None:
            return self.append_position.seek(offset, whence)
        if whence == io.SEEK_SET and offset < 0:
            raise OSError(errno.EINVAL, "Invalid argument", self.target.path)
        return self._spool.seek(offset, whence)

    def tell(self) -> int:
        self._check_open()
        if self.append_position is not None:
            return self.append_position.tell()
        return self._spool.tell()

    def truncate(self, size: int | None = None) -> int:
        self._check_open()
        if self.append_position is not None:
            # The spool holds only the new bytes; the stored ones cannot be cut from here.
            raise io.UnsupportedOperation(
                f"truncate() in plain append mode ('a') on a state path ({self.target.path}); "
                "open it with 'r+' or 'a+' to truncate"
            )
        here = self._spool.tell()
        position = here if size is None else size
        if position > self._spool.seek(0, io.SEEK_END):
            # A spool still in memory (BytesIO) does not grow on truncate as
            # a file does; on disk it grows sparse, as a local file would.
            self._spool.rollover()
        self._spool.truncate(position)
        self._spool.seek(here)
        self._dirty = True
        if self._may_stream:
            if position < self._sent or position > WRITE_BEHIND_LIMIT:
                self._stop_behind()
            else:
                self._end = position
        return position

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._aborted and self._must_commit():
                self._commit()
        finally:
            self._stop_behind()  # aborted, or the commit failed: the connector discards it
            self._spool.close()
            super().close()

    def _must_commit(self) -> bool:
        # "w" and "x" create or truncate even when nothing is written, "a"
        # and "a+" create a missing file; otherwise only a change is stored.
        return self._dirty or self._created or self._spec.kind in "wx" or not self._spec.plus

    def _commit(self) -> None:
        client, key, path = self.target.client, self.target.key, self.target.path
        size = self._spool.seek(0, io.SEEK_END)
        self._spool.seek(0)
        if self._spec.kind == "a" and not self._spec.plus:
            if self._native_append:
                client.append(key, path, self._spool, size)
            else:
                self._append_by_rewrite(size)
            return
        if self._behind is not None and self._finish_behind():
            return
        if self._conflict is not None:
            client.failed(self._conflict, key)
            raise self._conflict
        condition = self._condition
        if condition is None:
            condition = self._create_only or client.write_condition(key, path)
        client.put(key, path, self._spool, size, condition, request_id=self._request_id)

    # -- write-behind ------------------------------------------------------

    def _write_behind(self, position: int, buffer: Any, count: int) -> None:
        if position < self._sent:
            self._stop_behind()  # a rewrite of bytes already sent
            return
        self._end = max(self._end, position + count)
        if self._end > WRITE_BEHIND_LIMIT:
            self._stop_behind()
            return
        if self._behind is None:
            if self._end < WRITE_BEHIND_AFTER:
                return
            self._start_behind()
        if position == self._sent and position + count == self._end:
            self._send_behind(memoryview(buffer).cast("B")[:count])
        else:
            self._catch_up()  # the start, or a write past the end (a hole of zeros)

    def _start_behind(self) -> None:
        client, key, path = self.target.client, self.target.key, self.target.path
        try:
            self._condition = self._create_only or client.write_condition(key, path)
            self._behind = client.start_put(
                key, path, {**self._condition, **self._request_id}, None
            )
            self._behind_pid = os.getpid()
        except Exception as exc:
            self._stop_behind(exc)

    def _catch_up(self) -> None:
        """Send the spool from what was sent to its end, keeping the spool's position."""
        here = self._spool.tell()
        try:
            self._spool.seek(self._sent)
            while self._behind is not None and self._sent < self._end:
                chunk = self._spool.read(min(4 * mount_client.UPLOAD_CHUNK, self._end - self._sent))
                if not chunk:
                    self._stop_behind()
                    break
                self._send_behind(chunk)
        finally:
            self._spool.seek(here)

    def _live_behind(self) -> transport.Upload | None:
        if self._behind is not None and self._behind_pid != os.getpid():
            self._stop_behind()  # closes only this process's copy of the socket
        return self._behind

    def _send_behind(self, data: bytes | memoryview) -> None:
        upload = self._live_behind()
        if upload is None:
            return
        try:
            upload.send(data)
        except BaseException as exc:
            # Nothing was committed: the commit sends the spool instead.
            self._stop_behind(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._sent += len(data)

    def _stop_behind(self, exc: BaseException | None = None) -> None:
        """Give the upload up for good (the connector discards it); keep a conflict for close."""
        self._may_stream = False
        if isinstance(exc, FileExistsError):
            self._conflict = exc
        upload, self._behind = self._behind, None
        if upload is not None:
            upload.abort()

    def _finish_behind(self) -> bool:
        """Complete the upload; False when it was lost before its outcome was known."""
        client, key, path = self.target.client, self.target.key, self.target.path
        self._catch_up()  # a truncate may have grown the file since the last write
        upload, self._behind = self._live_behind(), None
        if upload is None:
            return False
        try:
            client.finish(upload, key, path, forget=False)
        except (ConnectionError, TimeoutError):
            return False
        except BaseException as exc:
            client.failed(exc, key)
            raise
        return True

    def _append_by_rewrite(self, size: int) -> None:
        client, key, path = self.target.client, self.target.key, self.target.path
        whole: IO[bytes]
        with tempfile.SpooledTemporaryFile(max_size=SPILL_THRESHOLD) as whole:
            found = _load(self.target, whole, missing_ok=True)
            if found and size == 0:
                return
            while chunk := self._spool.read(mount_client.UPLOAD_CHUNK):
                whole.write(chunk)
            total = whole.tell()
            whole.seek(0)
            client.put(key, path, whole, total, client.write_condition(key, path))


class StreamRaw(StateRaw):
    """A passthrough write: each write is sent at once as one chunk of a chunked request."""

    def __init__(self, target: Target, name: str | bytes, spec: ModeSpec) -> None:
        super().__init__(target, name, spec.raw_mode)
        self._upload: transport.Upload | None = None
        self._failed = False
        if spec.kind == "a":
            self.append_position = AppendPosition(target)
        try:
            self._upload = self._start(spec)
        except BaseException:
            self._give_up()
            raise

    def _start(self, spec: ModeSpec) -> transport.Upload:
        client, key, path = self.target.client, self.target.key, self.target.path
        if spec.kind == "a":
            return client.start_append(key, path, None)
        if spec.kind == "x":
            condition = client.create_only_condition(path)
            if client.head(key, path) is not None:
                raise FileExistsError(errno.EEXIST, "File exists", path)
        else:
            condition = client.write_condition(key, path)
        return client.start_put(key, path, condition, None)

    def writable(self) -> bool:
        self._check_open()
        return True

    def seekable(self) -> bool:
        self._check_open()
        # Appends keep a position (AppendPosition); other writes are already on their way.
        return self.append_position is not None

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if self.append_position is None:
            raise io.UnsupportedOperation("seek: passthrough writes stream and cannot seek")
        return self.append_position.seek(offset, whence)

    def tell(self) -> int:
        self._check_open()
        if self.append_position is None:
            raise io.UnsupportedOperation("tell: passthrough writes stream and cannot seek")
        return self.append_position.tell()

    def write(self, buffer: Any) -> int:
        self._check_open()
        view = memoryview(buffer).cast("B")
        if self._upload is None or self._aborted or self._failed:
            return len(view)
        try:
            self._upload.send(view)
        except BaseException as exc:
            self._failed = True
            self.target.client.failed(exc, self.target.key)  # an early 409, a lost connection
            raise
        if self.append_position is not None:
            self.append_position.wrote(len(view))
        return len(view)

    def close(self) -> None:
        if self.closed:
            return
        upload, self._upload = self._upload, None
        try:
            if upload is None:
                pass
            elif self._aborted or self._failed:
                upload.abort()
            else:
                self.target.client.finish(upload, self.target.key, self.target.path)
        finally:
            super().close()


def _load(target: Target, sink: IO[bytes], *, missing_ok: bool) -> bool:
    """Copy the current object into ``sink``; False if it does not exist and that is fine."""
    try:
        reply = target.client.get(target.key, target.path)
    except FileNotFoundError:
        if missing_ok:
            return False
        raise
    buffer = memoryview(bytearray(mount_client.UPLOAD_CHUNK))
    while count := reply.readinto(buffer):
        sink.write(buffer[:count])
    return True


# -- buffered and text layers ---------------------------------------------------


def _abort(layer: object) -> None:
    """Abort the StateRaw under a buffered or text layer, so close() commits nothing."""
    raw = getattr(getattr(layer, "buffer", layer), "raw", layer)
    if isinstance(raw, StateRaw):
        raw.abort()


class _AbortOnError:
    """A ``with`` block that raises leaves the previous version: the layer aborts, then closes."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            _abort(self)
        cast(io.IOBase, self).close()


class StateBufferedWriter(_AbortOnError, io.BufferedWriter):
    pass


class StateBufferedRandom(_AbortOnError, io.BufferedRandom):
    pass


class StateTextIOWrapper(_AbortOnError, io.TextIOWrapper):
    pass


def _make_raw(target: Target, name: str | bytes, spec: ModeSpec) -> StateRaw:
    if spec.kind == "r" and not spec.plus:
        return ReadRaw(target, name)
    if target.mount.passthrough and not spec.plus:
        if spec.kind in "wx":
            return StreamRaw(target, name, spec)
        if spec.kind == "a" and target.client.supports(mount_client.APPEND, target.path):
            return StreamRaw(target, name, spec)
    return SpoolRaw(target, name, spec)


def _refuse_directory_path(target: Target, spec: ModeSpec) -> None:
    """``open("f.txt/")``: a path ending with ``/`` names a directory, which open() cannot open.

    Costs one HEAD, only for such paths: the trailing slash is gone from the key.
    """
    meta = target.client.head(target.key, target.path)
    if meta is not None and not meta.is_dir:
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", target.path)
    if meta is None and spec.kind == "r":
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", target.path)
    raise IsADirectoryError(errno.EISDIR, "Is a directory", target.path)


def open_file(
    target: Target,
    name: str | bytes,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
) -> IO[Any]:
    """``open()`` for a path on a state mount."""
    spec = parse_mode(mode, buffering, encoding, errors, newline)
    if not target.key:
        raise IsADirectoryError(errno.EISDIR, "Is a directory", target.path)
    if target.dir_only:
        _refuse_directory_path(target, spec)
    raw = _make_raw(target, name, spec)
    try:
        opened = _stack(raw, spec, mode, buffering, encoding, errors, newline)
    except BaseException:
        raw.abort()
        raw.close()
        raise
    if raw.append_position is not None:
        raw.append_position.stacking = False
    return opened


def _stack(
    raw: StateRaw,
    spec: ModeSpec,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
) -> IO[Any]:
    """The buffered and text layers over ``raw``, as the real ``open`` stacks them."""
    if buffering == 0:
        return raw  # type: ignore[return-value]
    size = buffering if buffering > 1 else BUFFER_SIZE
    buffer: io.BufferedIOBase
    if spec.plus:
        buffer = StateBufferedRandom(raw, size)
    elif spec.kind == "r":
        buffer = io.BufferedReader(raw, size)
    else:
        buffer = StateBufferedWriter(raw, size)
    if spec.binary:
        return buffer
    position = raw.append_position
    if (
        position is not None
        and encoding is not None
        and encoding != "locale"
        and codecs.lookup(encoding).name in _BOM_CODECS
    ):
        # The text layer asks tell() now and writes a BOM only at position 0.
        position.learn_size()
    text = StateTextIOWrapper(buffer, encoding, errors, newline, line_buffering=buffering == 1)
    text.mode = mode  # type: ignore[misc]
    return text
