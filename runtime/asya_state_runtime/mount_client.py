"""The wire protocol as seen from one mount: one method per connector operation.

Owns: request paths and queries (keys percent-encoded with ``/`` literal),
the lazily fetched and cached ``/v1/info`` (capabilities; the lock guarding
the fetch is replaced in a forked child, which would otherwise wait forever
for a fetch running in a thread the fork did not copy), which statuses
count as success, recording the revisions the current scope reads and
writes (revisions.py), the write conditions those revisions imply (If-Match
only when the connector declares ``cas``, If-None-Match: * only with
``create_only``), and forgetting a key's revision when a write, delete or
rename of it fails with a conflict or an unknown outcome (``_in_doubt``),
and telling another server on the socket by its answers (a success answer
about an object without ``X-Asya-Size``, a ``/v1/info`` without
capabilities: ConnectionError(EPROTO), see errors.foreign).

Must not: patch anything or know about file objects and ``os`` semantics.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TypeVar
from urllib.parse import quote, urlencode

from . import errors, revisions, transport
from .config import Mount

CAS = "cas"
CREATE_ONLY = "create_only"
APPEND = "append"

OBJECTS = "/v1/objects/"
XATTRS = "/v1/xattrs/"
LIST = "/v1/list"
INFO = "/v1/info"

UPLOAD_CHUNK = 256 * 1024
_CREATE_ONLY_HEADERS = {"If-None-Match": "*"}
REQUEST_ID = "Asya-Request-Id"
SIZE = "X-Asya-Size"
# How long a mutating request that failed with "not reached" is retried
# (seconds): covers a connector restart (about a second) and a backend
# failover. Once any attempt failed in a way that may have applied it (the
# connection broke under it, a timeout, a 503 other than ``unreachable``),
# retries go on for the mount's timeout, so the outcome becomes known rather
# than left to a requeue that would apply it again.
RETRY_WINDOW = 5.0
# No retry is sent later than this after the first attempt began (a first
# attempt that hung for the mount's whole timeout gets its one retry only
# within it): connectors recognise a request for RECORD_SECONDS (120) after
# applying it, so every retry sent finds the record of an applied attempt.
# Equal to the connectors' idempotency.RETRY_LIMIT_SECONDS (a test checks).
RETRY_HORIZON = 100.0
_FIRST_DELAY = 0.05
_MAX_DELAY = 1.0

T = TypeVar("T")


@dataclass(frozen=True)
class Info:
    connector: str
    capabilities: frozenset[str]
    writable_xattrs: frozenset[str]
    max_object_size: int | None


@dataclass(frozen=True)
class Meta:
    """What a HEAD says about a key."""

    is_dir: bool
    size: int
    etag: str | None
    mtime: float | None


@dataclass(frozen=True)
class Entry:
    """One name in a directory listing."""

    name: str
    key: str
    is_dir: bool
    size: int
    mtime: float | None


def encode_key(key: str, path: str) -> str:
    try:
        return quote(key, safe="/")
    except UnicodeEncodeError:
        raise OSError(errno.EINVAL, "state paths must be valid UTF-8", path) from None


def encode_query(params: Mapping[str, str], path: str) -> str:
    try:
        return urlencode(params, quote_via=quote, safe="/")
    except UnicodeEncodeError:
        raise OSError(errno.EINVAL, "state paths must be valid UTF-8", path) from None


def _in_doubt(exc: BaseException) -> bool:
    """Whether a failed write leaves the remembered revision useless.

    A conflict (409, FileExistsError) proves another revision is current; a
    lost connection, a timeout, a 500/503/504 or an interruption
    (KeyboardInterrupt, a signal's exception) leave unknown whether the write
    landed. Keeping the revision would make every later write of the key
    conflict until it is read again, so a requeued message could never
    succeed. Any other refusal (400, 403, 404, 413, 501...) proves nothing
    was written, and the revision still guards the next attempt.
    """
    if isinstance(exc, FileExistsError | ConnectionError | TimeoutError):
        return True
    return not isinstance(exc, OSError) or exc.errno in (errno.EIO, None)


def _outcome_unknown(exc: BaseException) -> bool:
    """Whether a failed attempt may have been applied.

    Only a failure that proves nothing was sent leaves the outcome known: a
    connector that refused the connection or is not there (ECONNREFUSED,
    ENOENT...), or a connector answering ``503 unreachable`` (its backend
    could not be reached, ECONNREFUSED). A connection lost under the attempt
    (ECONNRESET: the connector died, maybe after applying it), a timeout, or
    any other 503 (ECONNABORTED: sent, then the backend failed) leave it
    unknown.
    """
    if isinstance(exc, TimeoutError):
        return True
    return exc.errno in (errno.ECONNRESET, errno.ECONNABORTED) if isinstance(exc, OSError) else True


def new_request_id() -> dict[str, str]:
    """The header naming one logical mutating operation, reused by its retries."""
    return {REQUEST_ID: secrets.token_hex(16)}


def _float_or_none(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


class MountClient:
    """Protocol operations against the connector of one mount."""

    def __init__(self, mount: Mount) -> None:
        self.mount = mount
        self._info: Info | None = None
        self._info_lock = threading.Lock()
        _clients.add(self)

    def reset_after_fork(self) -> None:
        # A fetch in flight belongs to a parent thread the child does not have.
        self._info_lock = threading.Lock()

    def failed(self, exc: BaseException, *keys: str) -> None:
        """A write of ``keys`` raised ``exc``: forget them if their revision is now in doubt."""
        if _in_doubt(exc):
            for key in keys:
                revisions.forget(self.mount.name, key)

    def _check_object_answer(
        self, reply: transport.Reply, method: str, target: str, path: str
    ) -> None:
        """Every success answer about an object carries X-Asya-Size; another server's does not.

        A server that takes any path for a key (as an upstream connector
        might) would otherwise have its 200 taken for a stored write or for
        a file's content.
        """
        if reply.header(SIZE) is None:
            raise errors.foreign(
                self.mount,
                path,
                f"it answered {method} {target[:120]} with HTTP {reply.status} and no {SIZE}",
            )

    @property
    def pool(self) -> transport.Pool:
        return transport.pool_for(self.mount)

    def _request(
        self,
        method: str,
        target: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> transport.Reply:
        return transport.request(self.pool, method, target, path=path, headers=headers, body=body)

    # -- capabilities ----------------------------------------------------

    def info(self, path: str) -> Info:
        """The connector's description, fetched once per process."""
        with self._info_lock:
            if self._info is None:
                reply = self._request("GET", INFO, path)
                if reply.status != 200:
                    raise reply.error()
                self._info = _parse_info(reply.read_all(), self.mount, path)
            return self._info

    def supports(self, capability: str, path: str) -> bool:
        return capability in self.info(path).capabilities

    def write_condition(self, key: str, path: str) -> dict[str, str]:
        """Headers making a write of ``key`` conditional on what the current scope saw of it."""
        seen = revisions.recall(self.mount.name, key)
        # Implicit conditions are what CAS means; a connector without ``cas``
        # is last-writer-wins, even if it can create exclusively for mode "x".
        if seen is None or not self.supports(CAS, path):
            return {}
        if seen == revisions.MISSING:
            return dict(_CREATE_ONLY_HEADERS) if self.supports(CREATE_ONLY, path) else {}
        return {"If-Match": seen}

    def create_only_condition(self, path: str) -> dict[str, str]:
        if not self.supports(CREATE_ONLY, path):
            info = self.info(path)
            raise OSError(
                errno.ENOTSUP,
                f"exclusive creation (mode 'x') needs a connector with create_only; "
                f"{info.connector} on mount {self.mount.name!r} does not declare it",
                path,
            )
        return dict(_CREATE_ONLY_HEADERS)

    # -- objects -----------------------------------------------------------

    def head(self, key: str, path: str, *, probe: bool = False) -> Meta | None:
        """Stat ``key``: None when it is neither an object nor a non-empty prefix.

        ``probe`` asks only what is there (the os.path predicates): a missing
        key is then None even below a file, which lets the connector answer
        from fewer backend requests.
        """
        target = OBJECTS + encode_key(key, path) + ("?probe=true" if probe else "")
        reply = self._request("HEAD", target, path)
        if reply.status == 404:
            reply.read_all()
            revisions.remember(self.mount.name, key, None)
            return None
        if reply.status != 200:
            raise reply.error()
        reply.read_all()
        self._check_object_answer(reply, "HEAD", target, path)
        is_dir = reply.header("X-Asya-Kind") == "directory"
        etag = None if is_dir else reply.header("ETag")
        if not is_dir:
            revisions.remember(self.mount.name, key, etag)
        size = reply.header("X-Asya-Size")
        return Meta(
            is_dir=is_dir,
            size=int(size) if size and size.isdigit() else 0,
            etag=etag,
            mtime=_float_or_none(reply.header("X-Asya-Mtime")),
        )

    def get(
        self,
        key: str,
        path: str,
        start: int = 0,
        length: int | None = None,
        *,
        opening: bool = True,
    ) -> transport.Reply:
        """Open a read of ``key`` from byte ``start`` (``length`` bytes, or to the end).

        The caller reads the body. ``opening`` is the read that opens a file:
        its revision is what a later write is conditional on; the ranges a
        file reads later are checked against it by the caller instead.
        """
        headers = None
        if length is not None:
            headers = {"Range": f"bytes={start}-{start + length - 1}"}
        elif start:
            headers = {"Range": f"bytes={start}-"}
        target = OBJECTS + encode_key(key, path)
        reply = self._request("GET", target, path, headers)
        if reply.status in (200, 206):
            if reply.header(SIZE) is None:
                reply.close_connection()
                self._check_object_answer(reply, "GET", target, path)
            if opening:
                revisions.remember(self.mount.name, key, reply.header("ETag"))
            return reply
        if reply.status == 404 and opening:
            revisions.remember(self.mount.name, key, None)
        raise reply.error()

    def put(
        self,
        key: str,
        path: str,
        source: IO[bytes],
        size: int,
        headers: Mapping[str, str],
        *,
        request_id: Mapping[str, str] | None = None,
    ) -> None:
        """Store ``size`` bytes read from ``source`` as ``key`` in one request (retried, see _once).

        ``request_id`` names the operation when an earlier request already
        tried it (a write-behind upload lost mid-way).
        """
        headers = {**headers, **(request_id or new_request_id())}
        self._send_all(lambda: self.start_put(key, path, headers, size), key, path, source, size)

    def _send_all(
        self,
        start: Callable[[], transport.Upload],
        key: str,
        path: str,
        source: IO[bytes],
        size: int,
    ) -> None:
        origin = source.tell()

        def attempt() -> None:
            source.seek(origin)
            upload = start()
            try:
                _copy_into(source, upload, size)
            except BaseException:
                upload.abort()  # an early answer (409) or a broken connection
                raise
            self.finish(upload, key, path, forget=False)

        try:
            self._once(attempt)
        except BaseException as exc:
            self.failed(exc, key)
            raise

    def _once(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` (one request carrying a request id) until its outcome is known.

        Only a failure that leaves the outcome unknown is retried, and with
        the same id, so the connector can recognise a request it applied.
        """
        started = time.monotonic()
        deadline = started + min(self.mount.timeout, RETRY_WINDOW)
        delay = _FIRST_DELAY
        tries = 0
        doubt: ConnectionError | TimeoutError | None = None
        while True:
            try:
                return attempt()
            except (ConnectionError, TimeoutError) as exc:
                if exc.errno == errno.EPROTO:
                    raise  # another protocol on the socket: trying again cannot help
                in_doubt = _outcome_unknown(exc)
                if in_doubt:
                    doubt = doubt or exc
                    # This attempt may have been applied (the connector or the
                    # backend died with it): giving up would leave the outcome
                    # unknown and a requeued message would apply it again, so
                    # keep trying for the mount's timeout, an outage slower
                    # than RETRY_WINDOW included. Later "not reached" answers
                    # say nothing about this attempt, so the deadline stays.
                    deadline = max(deadline, started + self.mount.timeout)
                tries += 1
                resend = time.monotonic() + delay
                if (tries > 1 and resend > deadline) or resend - started > RETRY_HORIZON:
                    if doubt is None:
                        raise  # every attempt was refused before it was sent
                    if in_doubt:
                        errors.mark_outcome_unknown(exc)
                        raise
                    # The last answer says "not reached", but an earlier attempt
                    # may have been applied: the handler must not read this as
                    # "nothing happened".
                    unknown = type(doubt)(
                        doubt.errno,
                        f"outcome unknown, an earlier attempt may have been applied "
                        f"({doubt.strerror}); the last retry found: {exc.strerror}",
                        exc.filename,
                    )
                    errors.mark_outcome_unknown(unknown)
                    raise unknown from exc
            time.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    def start_put(
        self, key: str, path: str, headers: Mapping[str, str], size: int | None
    ) -> transport.Upload:
        return transport.start_upload(
            self.pool,
            "PUT",
            OBJECTS + encode_key(key, path),
            path=path,
            headers=headers,
            size=size,
        )

    def start_append(
        self, key: str, path: str, size: int | None, headers: Mapping[str, str] | None = None
    ) -> transport.Upload:
        return transport.start_upload(
            self.pool,
            "POST",
            OBJECTS + encode_key(key, path) + "?op=append",
            path=path,
            headers=headers or {},
            size=size,
        )

    def append(self, key: str, path: str, source: IO[bytes], size: int) -> None:
        headers = new_request_id()
        self._send_all(lambda: self.start_append(key, path, size, headers), key, path, source, size)

    def finish(self, upload: transport.Upload, key: str, path: str, *, forget: bool = True) -> None:
        """Complete a write and remember the revision it created (or forget the key, see failed)."""
        try:
            reply = upload.finish()
            if reply.status != 200:
                raise reply.error()
            reply.read_all()
            self._check_object_answer(reply, "a write of", key, path)
        except BaseException as exc:
            if forget:
                self.failed(exc, key)
            raise
        revisions.remember(self.mount.name, key, reply.header("ETag"))

    def move(self, op: str, key: str, target_key: str, path: str) -> None:
        """``op`` is copy or rename; the target's new revision is remembered."""
        query = encode_query({"op": op, "to": target_key}, path)
        headers = new_request_id()

        def attempt() -> transport.Reply:
            reply = self._request(
                "POST", OBJECTS + encode_key(key, path) + "?" + query, path, headers
            )
            if reply.status != 200:
                raise reply.error()
            reply.read_all()
            self._check_object_answer(reply, "POST", f"?op={op}", path)
            return reply

        try:
            reply = self._once(attempt)
        except BaseException as exc:
            self.failed(exc, key, target_key)
            raise
        revisions.remember(self.mount.name, target_key, reply.header("ETag"))
        if op == "rename":
            revisions.remember(self.mount.name, key, None)

    def delete(self, key: str, path: str) -> bool:
        """Delete ``key`` (conditionally on its remembered revision); False if it was absent."""
        condition = self.write_condition(key, path)
        condition.pop("If-None-Match", None)
        headers = {**condition, **new_request_id()}

        def attempt() -> bool:
            reply = self._request("DELETE", OBJECTS + encode_key(key, path), path, headers)
            if reply.status == 404:
                reply.read_all()
                return False
            if reply.status not in (200, 204):
                raise reply.error()
            reply.read_all()
            return True

        try:
            found = self._once(attempt)
        except BaseException as exc:
            self.failed(exc, key)
            raise
        if found:
            revisions.remember(self.mount.name, key, None)
        return found

    # -- listing -----------------------------------------------------------

    def list(self, prefix: str, path: str, *, recursive: bool = False) -> Iterator[Entry]:
        """Every object (and, unless recursive, sub-prefix) under ``prefix``, page by page."""
        token: str | None = None
        while True:
            params = {"prefix": prefix, "delimiter": "" if recursive else "/", "limit": "1000"}
            if token:
                params["page_token"] = token
            query = encode_query(params, path)
            reply = self._request("GET", f"{LIST}?{query}", path)
            if reply.status != 200:
                raise reply.error()
            page = _parse_json(reply.read_all(), self.mount, path)
            yield from _page_entries(page, prefix)
            next_token = page.get("next_page_token")
            if not isinstance(next_token, str) or not next_token:
                return
            token = next_token

    # -- attributes ----------------------------------------------------------

    def xattrs(self, key: str, path: str) -> dict[str, str]:
        reply = self._request("GET", XATTRS + encode_key(key, path), path)
        if reply.status != 200:
            raise reply.error()
        attributes = _parse_json(reply.read_all(), self.mount, path).get("attributes")
        if not isinstance(attributes, dict):
            return {}
        return {str(k): str(v) for k, v in attributes.items()}

    def xattr(self, key: str, name: str, path: str) -> str:
        reply = self._request("GET", self._xattr_target(key, name, path), path)
        if reply.status != 200:
            raise reply.error()
        return reply.read_all().decode("utf-8")

    def set_xattr(self, key: str, name: str, value: str, path: str) -> None:
        # Setting a value twice leaves the same value: the retry needs no recognition.
        headers = {"Content-Type": "text/plain; charset=utf-8", **new_request_id()}
        self._once(
            lambda: self._no_content(
                "PUT", self._xattr_target(key, name, path), path, headers, value.encode("utf-8")
            )
        )

    def remove_xattr(self, key: str, name: str, path: str) -> None:
        headers = new_request_id()
        self._once(
            lambda: self._no_content("DELETE", self._xattr_target(key, name, path), path, headers)
        )

    def _no_content(
        self,
        method: str,
        target: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> None:
        reply = self._request(method, target, path, headers, body)
        if reply.status not in (200, 204):
            raise reply.error()
        reply.read_all()

    def _xattr_target(self, key: str, name: str, path: str) -> str:
        return f"{XATTRS}{encode_key(key, path)}?{encode_query({'name': name}, path)}"


_clients: weakref.WeakSet[MountClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_clients):
        client.reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _copy_into(source: IO[bytes], upload: transport.Upload, size: int) -> None:
    left = size
    while left > 0:
        chunk = source.read(min(UPLOAD_CHUNK, left))
        if not chunk:
            raise OSError(errno.EIO, f"the write buffer ended {left} bytes early")
        upload.send(chunk)
        left -= len(chunk)


def _parse_json(body: bytes, mount: Mount, path: str) -> dict[str, object]:
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        parsed = None
    if not isinstance(parsed, dict):
        raise OSError(
            errno.EPROTO, f"the connector of mount {mount.name!r} sent a malformed answer", path
        )
    return parsed


def _parse_info(body: bytes, mount: Mount, path: str) -> Info:
    try:
        data = _parse_json(body, mount, path)
    except OSError:
        data = {}
    if not isinstance(data.get("capabilities"), list):
        # Every asya-state connector describes itself here; another server does not.
        raise errors.foreign(mount, path, f"its {INFO} answer was {body[:120]!r}")

    def names(field: str) -> frozenset[str]:
        value = data.get(field)
        return (
            frozenset(v for v in value if isinstance(v, str))
            if isinstance(value, list)
            else frozenset()
        )

    limit = data.get("max_object_size")
    return Info(
        connector=str(data.get("connector", "unknown")),
        capabilities=names("capabilities"),
        writable_xattrs=names("writable_xattrs"),
        max_object_size=limit if isinstance(limit, int) else None,
    )


def _page_entries(page: Mapping[str, object], prefix: str) -> Iterator[Entry]:
    found: list[Entry] = []
    raw_entries = page.get("entries")
    for item in raw_entries if isinstance(raw_entries, list) else []:
        if not isinstance(item, dict):
            continue
        key = item.get("key")
        if not isinstance(key, str) or not key.startswith(prefix) or key == prefix:
            continue
        size = item.get("size")
        found.append(
            Entry(
                name=key[len(prefix) :],
                key=key,
                is_dir=False,
                size=size if isinstance(size, int) else 0,
                mtime=_float_or_none(item.get("last_modified")),
            )
        )
    raw_prefixes = page.get("prefixes")
    for sub in raw_prefixes if isinstance(raw_prefixes, list) else []:
        if isinstance(sub, str) and sub.startswith(prefix) and len(sub) > len(prefix) + 1:
            key = sub.rstrip("/")
            found.append(Entry(name=key[len(prefix) :], key=key, is_dir=True, size=0, mtime=None))
    found.sort(key=lambda entry: entry.name)
    return iter(found)
