"""``os``-level operations on state paths, with the semantics of a filesystem of objects.

Owns: stat results synthesized from HEAD (size, file or directory mode,
mtime when the backend records one, a stable inode per key), directory
listings and ``scandir`` entries (a directory is a non-empty prefix; a mount
root always is one), remove, rename (within one mount; a directory renames
object by object), mkdir/rmdir (accepted, nothing stored), extended
attributes under ``user.asya.``, rmtree and touch. A path given with a
trailing slash must name a directory (``os.stat("f.txt/")`` is ENOTDIR).

Must not: fall back to the local filesystem; every answer comes from the
mount's connector or from these rules.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import stat as stat_module
import threading
from collections.abc import Callable, Iterator
from typing import Any

from . import files, mount_client
from .mount_client import Entry
from .mounts import Target

XATTR_PREFIX = "user.asya."
FILE_MODE = stat_module.S_IFREG | 0o644
DIR_MODE = stat_module.S_IFDIR | 0o755
BLOCK_SIZE = 256 * 1024


def _hash64(text: str) -> int:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def make_stat(target: Target, *, is_dir: bool, size: int, mtime: float | None) -> os.stat_result:
    # Distinct inodes matter: shutil refuses to copy a file onto "itself"
    # when st_dev and st_ino of source and destination agree.
    seconds = mtime or 0.0
    whole = int(seconds)
    nanos = int(seconds * 1_000_000_000)
    return os.stat_result(
        (
            DIR_MODE if is_dir else FILE_MODE,
            _hash64(f"{target.mount.name}\0{target.key}"),
            _hash64(target.mount.name) & 0xFFFFFFFF,
            1,
            os.getuid(),
            os.getgid(),
            size,
            whole,
            whole,
            whole,
        ),
        {
            "st_atime": seconds,
            "st_mtime": seconds,
            "st_ctime": seconds,
            "st_atime_ns": nanos,
            "st_mtime_ns": nanos,
            "st_ctime_ns": nanos,
            "st_blksize": BLOCK_SIZE,
            "st_blocks": (size + 511) // 512,
            "st_rdev": 0,
        },
    )


# Directories made by this process. Nothing is stored for them, but as on a
# local disk they exist (empty) until removed, so code that makes a directory
# and then checks it before writing into it (pandas does) works.
_made_lock = threading.Lock()
_made_dirs: set[tuple[str, str]] = set()


def _after_fork_in_child() -> None:
    # A thread of the parent may have held the lock at the fork.
    global _made_lock
    _made_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _remember_dir(target: Target) -> None:
    with _made_lock:
        _made_dirs.add((target.mount.name, target.key))


def _forget_dirs(target: Target) -> None:
    """Forget ``target`` and every directory made below it."""
    below = _prefix(target.key)
    with _made_lock:
        _made_dirs.difference_update(
            made
            for made in list(_made_dirs)
            if made[0] == target.mount.name and (made[1] == target.key or made[1].startswith(below))
        )


def _head(target: Target, *, probe: bool = False) -> mount_client.Meta | None:
    """HEAD of a key, where a directory this process made counts as an empty directory."""
    meta = target.client.head(target.key, target.path, probe=probe)
    if meta is None:
        with _made_lock:
            made = (target.mount.name, target.key) in _made_dirs
        if made:
            return mount_client.Meta(is_dir=True, size=0, etag=None, mtime=None)
    return meta


def _not_found(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "No such file or directory", path)


def _not_a_directory(path: str) -> NotADirectoryError:
    return NotADirectoryError(errno.ENOTDIR, "Not a directory", path)


def stat(target: Target, *, probe: bool = False) -> os.stat_result:
    if not target.key:
        return make_stat(target, is_dir=True, size=0, mtime=None)
    meta = _head(target, probe=probe)
    if meta is None:
        raise _not_found(target.path)
    if target.dir_only and not meta.is_dir:
        raise _not_a_directory(target.path)
    return make_stat(target, is_dir=meta.is_dir, size=meta.size, mtime=meta.mtime)


def probe(target: Target) -> os.stat_result | None:
    """``stat`` for the os.path predicates: None when nothing is there.

    Unlike genericpath, an unreachable or silent connector is not "nothing
    there": "load or start fresh" code must not start fresh and then
    overwrite state it could not see. The connector is asked what is
    there, not why nothing is (a parent that is a file), which it may answer
    from one backend request.
    """
    try:
        return stat(target, probe=True)
    except (ConnectionError, TimeoutError):
        raise
    except (OSError, ValueError):
        return None


# -- directories ------------------------------------------------------------------


def _prefix(key: str) -> str:
    return key + "/" if key else ""


def _listing(target: Target) -> Iterator[Entry]:
    """The entries of a directory; the first page is fetched now so errors surface now."""
    entries = target.client.list(_prefix(target.key), target.path)
    first = next(entries, None)
    if first is not None:
        return itertools.chain([first], entries)
    if target.key:
        meta = _head(target)
        if meta is None:
            raise _not_found(target.path)
        if not meta.is_dir:
            raise _not_a_directory(target.path)
    return iter(())


def listdir(target: Target, as_bytes: bool) -> list[Any]:
    names = [entry.name for entry in _listing(target)]
    return [os.fsencode(name) for name in names] if as_bytes else names


class StateDirEntry:
    """What ``os.scandir`` yields for a state path; stat data comes from the listing."""

    __slots__ = ("_entry", "_target", "name", "path")

    def __init__(self, target: Target, entry: Entry, name: str | bytes, path: str | bytes) -> None:
        self._target = target
        self._entry = entry
        self.name = name
        self.path = path

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._entry.is_dir

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return not self._entry.is_dir

    def is_symlink(self) -> bool:
        return False

    def is_junction(self) -> bool:
        return False

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        entry = self._entry
        return make_stat(
            self._target.child(entry.key), is_dir=entry.is_dir, size=entry.size, mtime=entry.mtime
        )

    def inode(self) -> int:
        return self.stat().st_ino

    def __fspath__(self) -> str | bytes:
        return self.path

    def __repr__(self) -> str:
        return f"<DirEntry {self.name!r}>"


class ScandirIterator:
    """An iterator of StateDirEntry that is also a context manager, like os.scandir's."""

    def __init__(self, target: Target, given: str | bytes) -> None:
        self._target = target
        self._given = given
        self._entries: Iterator[Entry] | None = _listing(target)

    def __iter__(self) -> ScandirIterator:
        return self

    def __next__(self) -> StateDirEntry:
        if self._entries is None:
            raise StopIteration
        entry = next(self._entries, None)
        if entry is None:
            self._entries = None
            raise StopIteration
        name: str | bytes = entry.name
        if isinstance(self._given, bytes):
            name = os.fsencode(entry.name)
        return StateDirEntry(self._target, entry, name, os.path.join(self._given, name))  # type: ignore[arg-type]

    def close(self) -> None:
        self._entries = None

    def __enter__(self) -> ScandirIterator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def scandir(target: Target, given: str | bytes) -> ScandirIterator:
    return ScandirIterator(target, given)


def mkdir(target: Target) -> None:
    """Stores nothing; the directory exists for this process until removed (see _made_dirs)."""
    if not target.key or _head(target) is not None:
        raise FileExistsError(errno.EEXIST, "File exists", target.path)
    _remember_dir(target)


def rmdir(target: Target) -> None:
    """Accepted when nothing is stored under the path (there is nothing to remove)."""
    if not target.key:
        raise OSError(errno.EBUSY, "a mount root cannot be removed", target.path)
    if next(target.client.list(_prefix(target.key), target.path), None) is not None:
        raise OSError(errno.ENOTEMPTY, "Directory not empty", target.path)
    meta = target.client.head(target.key, target.path)
    if meta is not None and not meta.is_dir:
        raise _not_a_directory(target.path)
    _forget_dirs(target)


# -- objects ------------------------------------------------------------------------


def remove(target: Target) -> None:
    if not target.key:
        raise IsADirectoryError(errno.EISDIR, "Is a directory", target.path)
    if target.dir_only:
        # "f.txt/" names a directory: nothing it names can be unlinked.
        stat(target)
        raise IsADirectoryError(errno.EISDIR, "Is a directory", target.path)
    if target.client.delete(target.key, target.path):
        return
    meta = target.client.head(target.key, target.path)
    if meta is not None and meta.is_dir:
        raise IsADirectoryError(errno.EISDIR, "Is a directory", target.path)
    raise _not_found(target.path)


def rename(source: Target, target: Target) -> None:
    if source.client is not target.client:
        raise OSError(
            errno.EXDEV,
            "Invalid cross-device link (different state mounts)",
            source.path,
            None,
            target.path,
        )
    if not source.key or not target.key:
        raise OSError(errno.EBUSY, "a mount root cannot be renamed", source.path, None, target.path)
    if source.key == target.key:
        return
    client = source.client
    try:
        client.move("rename", source.key, target.key, source.path)
        return
    except FileNotFoundError:
        entries = list(client.list(_prefix(source.key), source.path, recursive=True))
        if not entries:
            raise
    if target.key.startswith(_prefix(source.key)):
        raise OSError(
            errno.EINVAL, "cannot move a directory into itself", source.path, None, target.path
        )
    # A directory: move its objects one by one (not atomic as a whole).
    for entry in entries:
        moved = target.key + entry.key[len(source.key) :]
        client.move("rename", entry.key, moved, source.child(entry.key).path)


def rmtree(
    target: Target, report: Callable[[Callable[..., Any], str, BaseException], None]
) -> None:
    """Delete every object under a directory; errors go to ``report`` (function, path, error)."""
    client = target.client
    try:
        keys = [
            entry.key for entry in client.list(_prefix(target.key), target.path, recursive=True)
        ]
    except OSError as exc:
        report(os.scandir, target.path, exc)
        return
    meta = _head(target) if not keys and target.key else None
    _forget_dirs(target)
    if not keys and target.key:
        if meta is None:
            report(os.lstat, target.path, _not_found(target.path))
        elif not meta.is_dir:
            report(
                os.scandir,
                target.path,
                NotADirectoryError(errno.ENOTDIR, "Not a directory", target.path),
            )
        return
    for key in keys:
        child = target.child(key)
        try:
            client.delete(key, child.path)
        except OSError as exc:
            report(os.unlink, child.path, exc)


def touch(target: Target, exist_ok: bool) -> None:
    """Create an empty object if none exists (modification times cannot be set)."""
    if not target.key:
        if exist_ok:
            return
        raise FileExistsError(errno.EEXIST, "File exists", target.path)
    client = target.client
    if client.supports(mount_client.CREATE_ONLY, target.path):
        try:
            files.open_file(target, target.path, "xb").close()
        except FileExistsError:
            if not exist_ok:
                raise
        return
    meta = client.head(target.key, target.path)
    if meta is not None:
        if exist_ok:
            return
        raise FileExistsError(errno.EEXIST, "File exists", target.path)
    files.open_file(target, target.path, "wb").close()


# -- extended attributes ----------------------------------------------------------------


def _attribute(name: str | bytes) -> str | None:
    text = os.fsdecode(name)
    return text[len(XATTR_PREFIX) :] if text.startswith(XATTR_PREFIX) else None


def getxattr(target: Target, attribute: str | bytes) -> bytes:
    name = _attribute(attribute)
    if name is None or not target.key:
        raise OSError(errno.ENODATA, "No data available", target.path)
    return target.client.xattr(target.key, name, target.path).encode("utf-8")


def listxattr(target: Target) -> list[str]:
    if not target.key:
        return []
    try:
        names = target.client.xattrs(target.key, target.path)
    except FileNotFoundError:
        meta = target.client.head(target.key, target.path)
        if meta is not None and meta.is_dir:
            return []
        raise
    return [XATTR_PREFIX + name for name in sorted(names)]


def setxattr(target: Target, attribute: str | bytes, value: bytes, flags: int) -> None:
    name = _attribute(attribute)
    if name is None or not target.key:
        raise OSError(
            errno.ENOTSUP, f"state paths only have {XATTR_PREFIX}* attributes", target.path
        )
    try:
        text = bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise OSError(errno.EINVAL, "attribute values must be UTF-8 text", target.path) from None
    if flags & (os.XATTR_CREATE | os.XATTR_REPLACE):
        exists = name in target.client.xattrs(target.key, target.path)
        if exists and flags & os.XATTR_CREATE:
            raise FileExistsError(errno.EEXIST, f"{XATTR_PREFIX}{name} already exists", target.path)
        if not exists and flags & os.XATTR_REPLACE:
            raise OSError(errno.ENODATA, f"{XATTR_PREFIX}{name} does not exist", target.path)
    target.client.set_xattr(target.key, name, text, target.path)


def removexattr(target: Target, attribute: str | bytes) -> None:
    name = _attribute(attribute)
    if name is None or not target.key:
        raise OSError(errno.ENODATA, "No data available", target.path)
    target.client.remove_xattr(target.key, name, target.path)
