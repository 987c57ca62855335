"""``HttpConnector``: the Connector interface over a running connector's socket, for tests and tools.

Owns: one protocol request per interface method, sent through the
runtime's transport (``asya_state_runtime.transport``, the one client of
the protocol) in worker threads so the event loop never blocks; error
answers turned into the ConnectorError subclasses a backend raises, by
their stable code; and ``exchange`` for protocol-level tests that look at
raw statuses and headers. The conformance suite runs every behaviour test
through it, so each test checks the backend *and* the server's protocol
mapping with one body of assertions; ``asya-state bench`` drives a
connector through it.

Must not: speak HTTP itself (framing, parsing, pooling and timeouts are the
transport's) or be used by the runtime.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlencode

from asya_state_runtime import transport
from asya_state_runtime.config import Mount

from .errors import (
    ERROR_CODE_HEADER,
    ERROR_MESSAGE_HEADER,
    ERRORS_BY_CODE,
    BackendError,
    ConnectorError,
    RangeNotSatisfiable,
)
from .interface import (
    UNCONDITIONAL,
    Capability,
    Connector,
    Kind,
    ListPage,
    ObjectMeta,
    RangeSpec,
    ReadStream,
    WriteCondition,
)
from .keys import encode_key
from .settings import Settings

OBJECTS = "/v1/objects/"
XATTRS = "/v1/xattrs/"
READ_CHUNK = 256 * 1024
# A tool waits as long as a test may: a slow backend is not a broken connector.
TIMEOUT = 300.0
# Requests in flight at once per client (each holds a worker thread while it waits).
MAX_IN_FLIGHT = 64

T = TypeVar("T")
Header = Callable[[str], str | None]


@dataclass(frozen=True)
class Answer:
    """A whole answer: status, headers (``header(name)``, case-insensitive) and body."""

    status: int
    header: Header
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpConnector(Connector):
    """A running connector, reached through its Unix socket."""

    name = "http"

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._pool = transport.Pool(
            Mount("connector", "/", socket_path, timeout=TIMEOUT, connect_timeout=10.0)
        )
        self._workers = ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="http-connector")
        self._info: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings.required("CONNECTOR_SOCKET"))

    async def _run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._workers, functools.partial(call, *args, **kwargs))

    def _exchange(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Answer:
        reply = transport.request(
            self._pool, method, target, path=target, headers=headers, body=body
        )
        return Answer(reply.status, reply.header, reply.read_all())

    async def exchange(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Answer:
        """One request as given (``target`` already encoded) and its whole answer, status unchecked."""
        return await self._run(self._exchange, method, target, headers, body)

    async def _checked(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Answer:
        answer = await self.exchange(method, target, headers, body)
        _raise_for_error(answer)
        return answer

    async def open(self) -> None:
        self._info = (await self._checked("GET", "/v1/info")).json()
        # Mirror the remote declaration so supports() answers for the backend.
        self.capabilities = frozenset(Capability(c) for c in self._info["capabilities"])  # type: ignore[misc]
        self.writable_xattrs = frozenset(self._info["writable_xattrs"])  # type: ignore[misc]
        self.max_object_size = self._info["max_object_size"]
        self.name = self._info["connector"]  # type: ignore[misc]

    async def close(self) -> None:
        self._pool.close()
        # Threads still waiting on a connector that never answers must not hold the caller.
        self._workers.shutdown(wait=False, cancel_futures=True)

    async def check_health(self) -> None:
        await self._checked("GET", "/v1/ready")

    async def stat(self, key: str) -> ObjectMeta:
        answer = await self.exchange("HEAD", _object(key))
        if answer.status == 404:
            raise ERRORS_BY_CODE["not_found"](f"no object at {key!r}", key=key)
        _raise_for_error(answer)
        if answer.header("X-Asya-Kind") == "directory":
            raise ERRORS_BY_CODE["not_found"](f"{key!r} is a directory", key=key)
        return _meta(key, answer.header)

    async def probe(self, key: str) -> ObjectMeta | Kind:
        answer = await self.exchange("HEAD", _object(key) + "?probe=true")
        if answer.status == 404:
            return Kind.MISSING
        _raise_for_error(answer)
        if answer.header("X-Asya-Kind") == "directory":
            return Kind.DIRECTORY
        return _meta(key, answer.header)

    async def read(self, key: str, byte_range: RangeSpec | None = None) -> ReadStream:
        headers = {}
        if byte_range is not None:
            first = "" if byte_range.first is None else str(byte_range.first)
            last = "" if byte_range.last is None else str(byte_range.last)
            headers["Range"] = f"bytes={first}-{last}"
        reply = await self._run(
            transport.request, self._pool, "GET", _object(key), path=key, headers=headers
        )
        if reply.status >= 400:
            _raise_for_error(Answer(reply.status, reply.header, await self._run(reply.read_all)))
        meta = _meta(key, reply.header)
        start, length = 0, meta.size
        if reply.status == 206:
            span = (reply.header("Content-Range") or "").removeprefix("bytes ").partition("/")[0]
            first_s, _, last_s = span.partition("-")
            start, length = int(first_s), int(last_s) - int(first_s) + 1

        async def chunks() -> AsyncIterator[bytes]:
            view = memoryview(bytearray(READ_CHUNK))
            try:
                while count := await self._run(reply.readinto, view):
                    yield bytes(view[:count])
            finally:
                reply.close_connection()  # nothing if the body was read to its end

        return ReadStream(meta, start, length, chunks())

    async def read_if_none_match(self, key: str, etag: str) -> int:
        """The status of a conditional GET (protocol-only)."""
        return (await self.exchange("GET", _object(key), {"If-None-Match": f'"{etag}"'})).status

    async def _upload(
        self,
        method: str,
        target: str,
        key: str,
        body: AsyncIterator[bytes],
        headers: Mapping[str, str],
        size: int | None,
    ) -> Answer:
        upload = await self._run(
            transport.start_upload,
            self._pool,
            method,
            target,
            path=key,
            headers=headers,
            size=size,
        )
        try:
            async for chunk in body:
                await self._run(upload.send, chunk)
            reply = await self._run(upload.finish)
        except OSError:
            upload.abort()
            early = upload.early
            if early is not None:  # the connector refused before the body ended
                _raise_for_error(Answer(early.status, early.header, early.body or b""))
            raise
        except BaseException:
            upload.abort()
            raise
        answer = Answer(reply.status, reply.header, await self._run(reply.read_all))
        _raise_for_error(answer)
        return answer

    async def write(
        self,
        key: str,
        body: AsyncIterator[bytes],
        *,
        size: int | None = None,
        condition: WriteCondition = UNCONDITIONAL,
        content_type: str | None = None,
    ) -> ObjectMeta:
        headers = _condition_headers(condition)
        if content_type:
            headers["Content-Type"] = content_type
        answer = await self._upload("PUT", _object(key), key, body, headers, size)
        return _written(key, answer.header, content_type)

    async def append(self, key: str, body: AsyncIterator[bytes]) -> ObjectMeta:
        answer = await self._upload("POST", _object(key) + "?op=append", key, body, {}, None)
        return _written(key, answer.header, None)

    async def copy(self, source: str, target: str) -> ObjectMeta:
        return await self._move("copy", source, target)

    async def rename(self, source: str, target: str) -> ObjectMeta:
        return await self._move("rename", source, target)

    async def _move(self, op: str, source: str, target: str) -> ObjectMeta:
        query = _query({"op": op, "to": target})
        answer = await self._checked("POST", f"{_object(source)}?{query}")
        return _written(target, answer.header, None)

    async def delete(self, key: str, *, condition: WriteCondition = UNCONDITIONAL) -> None:
        await self._checked("DELETE", _object(key), _condition_headers(condition))

    async def list(
        self,
        prefix: str,
        *,
        delimiter: str | None = "/",
        page_token: str | None = None,
        limit: int = 1000,
    ) -> ListPage:
        params = {"prefix": prefix, "delimiter": delimiter or "", "limit": str(limit)}
        if page_token is not None:
            params["page_token"] = page_token
        body = (await self._checked("GET", f"/v1/list?{_query(params)}")).json()
        entries = [
            ObjectMeta(
                key=e["key"],
                size=e["size"],
                etag=e["etag"],
                content_type=e.get("content_type"),
                last_modified=e.get("last_modified"),
            )
            for e in body["entries"]
        ]
        return ListPage(entries, body["prefixes"], body.get("next_page_token"))

    async def get_xattrs(self, key: str) -> dict[str, str]:
        attributes: dict[str, str] = (await self._checked("GET", _xattr(key))).json()["attributes"]
        return attributes

    async def get_xattr(self, key: str, name: str) -> str:
        return (await self._checked("GET", _xattr(key, name))).body.decode()

    async def set_xattr(self, key: str, name: str, value: str) -> None:
        await self._checked("PUT", _xattr(key, name), body=value.encode())

    async def remove_xattr(self, key: str, name: str) -> None:
        await self._checked("DELETE", _xattr(key, name))


def _object(key: str) -> str:
    return OBJECTS + encode_key(key)


def _xattr(key: str, name: str | None = None) -> str:
    target = XATTRS + encode_key(key)
    return target if name is None else f"{target}?{_query({'name': name})}"


def _query(params: Mapping[str, str]) -> str:
    return urlencode(params, quote_via=quote, safe="/")


def _condition_headers(condition: WriteCondition) -> dict[str, str]:
    if condition.if_match is not None:
        return {"If-Match": f'"{condition.if_match}"'}
    if condition.if_none_match:
        return {"If-None-Match": "*"}
    return {}


def _etag(header: Header) -> str:
    return (header("ETag") or "").strip('"')


def _meta(key: str, header: Header) -> ObjectMeta:
    mtime = header("X-Asya-Mtime")
    content_type = header("Content-Type")
    return ObjectMeta(
        key=key,
        size=int(header("X-Asya-Size") or "0"),
        etag=_etag(header),
        content_type=None if content_type in (None, "application/octet-stream") else content_type,
        last_modified=float(mtime) if mtime else None,
    )


def _written(key: str, header: Header, content_type: str | None) -> ObjectMeta:
    return ObjectMeta(
        key=key,
        size=int(header("X-Asya-Size") or "0"),
        etag=_etag(header),
        content_type=content_type,
    )


def _raise_for_error(answer: Answer) -> None:
    """The ConnectorError a backend would have raised for this error answer, by its stable code."""
    if answer.status < 400:
        return
    body: Any
    code_header = answer.header(ERROR_CODE_HEADER)
    if not answer.body and code_header is not None:
        # A HEAD answer: the code and message travel in headers.
        body = {"code": code_header, "message": answer.header(ERROR_MESSAGE_HEADER) or ""}
    else:
        try:
            body = json.loads(answer.body)
        except ValueError:
            body = None
    try:
        code, message = body["code"], body["message"]
    except (KeyError, TypeError):
        raise BackendError(f"HTTP {answer.status}: {answer.body[:200]!r}") from None
    cls = ERRORS_BY_CODE.get(code, ConnectorError)
    if cls is RangeNotSatisfiable:
        size = int((answer.header("Content-Range") or "bytes */0").rpartition("/")[2])
        raise RangeNotSatisfiable(message, key=body.get("key"), size=size)
    raise cls(message, key=body.get("key"))
