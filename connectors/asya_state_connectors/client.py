"""``HttpConnector``: the Connector interface spoken over the wire protocol.

Owns: an aiohttp client on a connector's Unix socket that implements the
same abstract interface as a backend, raising the same ConnectorError
subclasses from the error bodies. The conformance suite runs every
behaviour test through it, so each test checks the backend *and* the
server's protocol mapping with one body of assertions; tools use it to talk
to a running connector.

Must not: be used by the runtime (which is standard-library only).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Self

import aiohttp
from yarl import URL

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

BASE = "http://connector"


class HttpConnector(Connector):
    """A running connector, reached through its Unix socket."""

    name = "http"

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._session: aiohttp.ClientSession | None = None
        self._info: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings.required("CONNECTOR_SOCKET"))

    async def open(self) -> None:
        connector = aiohttp.UnixConnector(path=self.socket_path, limit=64)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        async with self.session.get(f"{BASE}/v1/info") as response:
            self._info = await response.json()
        # Mirror the remote declaration so supports() answers for the backend.
        self.capabilities = frozenset(Capability(c) for c in self._info["capabilities"])  # type: ignore[misc]
        self.writable_xattrs = frozenset(self._info["writable_xattrs"])  # type: ignore[misc]
        self.max_object_size = self._info["max_object_size"]
        self.name = self._info["connector"]  # type: ignore[misc]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "HttpConnector.open() was not awaited"
        return self._session

    async def check_health(self) -> None:
        async with self.session.get(f"{BASE}/v1/ready") as response:
            await _raise_for_error(response)

    async def stat(self, key: str) -> ObjectMeta:
        async with self.session.head(_object_url(key)) as response:
            if response.status == 404:
                raise ERRORS_BY_CODE["not_found"](f"no object at {key!r}", key=key)
            await _raise_for_error(response)
            if response.headers.get("X-Asya-Kind") == "directory":
                raise ERRORS_BY_CODE["not_found"](f"{key!r} is a directory", key=key)
            return _meta(key, response.headers)

    async def probe(self, key: str) -> ObjectMeta | Kind:
        async with self.session.head(_object_url(key, "?probe=true")) as response:
            if response.status == 404:
                return Kind.MISSING
            await _raise_for_error(response)
            if response.headers.get("X-Asya-Kind") == "directory":
                return Kind.DIRECTORY
            return _meta(key, response.headers)

    async def read(self, key: str, byte_range: RangeSpec | None = None) -> ReadStream:
        headers = {}
        if byte_range is not None:
            first = "" if byte_range.first is None else str(byte_range.first)
            last = "" if byte_range.last is None else str(byte_range.last)
            headers["Range"] = f"bytes={first}-{last}"
        response = await self.session.get(_object_url(key), headers=headers)
        try:
            await _raise_for_error(response)
        except BaseException:
            response.release()
            raise
        meta = _meta(key, response.headers)
        start, length = 0, meta.size
        if response.status == 206:
            span, _, _ = response.headers["Content-Range"].removeprefix("bytes ").partition("/")
            first_s, _, last_s = span.partition("-")
            start, length = int(first_s), int(last_s) - int(first_s) + 1

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.content.iter_chunked(256 * 1024):
                    yield chunk
            finally:
                response.release()

        return ReadStream(meta, start, length, chunks())

    async def read_if_none_match(self, key: str, etag: str) -> int:
        """The status of a conditional GET (protocol-only)."""
        async with self.session.get(
            _object_url(key), headers={"If-None-Match": f'"{etag}"'}
        ) as response:
            await response.read()
            return response.status

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
        if size is not None:
            headers["Content-Length"] = str(size)
        async with self.session.put(_object_url(key), data=body, headers=headers) as response:
            await _raise_for_error(response)
            return _written(key, response.headers, content_type)

    async def append(self, key: str, body: AsyncIterator[bytes]) -> ObjectMeta:
        async with self.session.post(
            _object_url(key), params={"op": "append"}, data=body
        ) as response:
            await _raise_for_error(response)
            return _written(key, response.headers, None)

    async def copy(self, source: str, target: str) -> ObjectMeta:
        return await self._move("copy", source, target)

    async def rename(self, source: str, target: str) -> ObjectMeta:
        return await self._move("rename", source, target)

    async def _move(self, op: str, source: str, target: str) -> ObjectMeta:
        async with self.session.post(
            _object_url(source), params={"op": op, "to": target}
        ) as response:
            await _raise_for_error(response)
            return _written(target, response.headers, None)

    async def delete(self, key: str, *, condition: WriteCondition = UNCONDITIONAL) -> None:
        async with self.session.delete(
            _object_url(key), headers=_condition_headers(condition)
        ) as response:
            await _raise_for_error(response)

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
        async with self.session.get(f"{BASE}/v1/list", params=params) as response:
            await _raise_for_error(response)
            body = await response.json()
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
        async with self.session.get(_xattr_url(key)) as response:
            await _raise_for_error(response)
            attributes: dict[str, str] = (await response.json())["attributes"]
            return attributes

    async def get_xattr(self, key: str, name: str) -> str:
        async with self.session.get(_xattr_url(key), params={"name": name}) as response:
            await _raise_for_error(response)
            return await response.text()

    async def set_xattr(self, key: str, name: str, value: str) -> None:
        async with self.session.put(
            _xattr_url(key), params={"name": name}, data=value.encode()
        ) as response:
            await _raise_for_error(response)

    async def remove_xattr(self, key: str, name: str) -> None:
        async with self.session.delete(_xattr_url(key), params={"name": name}) as response:
            await _raise_for_error(response)


def _object_url(key: str, query: str = "") -> URL:
    return URL(f"{BASE}/v1/objects/{encode_key(key)}{query}", encoded=True)


def _xattr_url(key: str) -> URL:
    return URL(f"{BASE}/v1/xattrs/{encode_key(key)}", encoded=True)


def _condition_headers(condition: WriteCondition) -> dict[str, str]:
    if condition.if_match is not None:
        return {"If-Match": f'"{condition.if_match}"'}
    if condition.if_none_match:
        return {"If-None-Match": "*"}
    return {}


def _etag(headers: Mapping[str, str]) -> str:
    return headers.get("ETag", "").strip('"')


def _meta(key: str, headers: Mapping[str, str]) -> ObjectMeta:
    mtime = headers.get("X-Asya-Mtime")
    content_type = headers.get("Content-Type")
    return ObjectMeta(
        key=key,
        size=int(headers.get("X-Asya-Size", "0")),
        etag=_etag(headers),
        content_type=None if content_type in (None, "application/octet-stream") else content_type,
        last_modified=float(mtime) if mtime else None,
    )


def _written(key: str, headers: Mapping[str, str], content_type: str | None) -> ObjectMeta:
    return ObjectMeta(
        key=key,
        size=int(headers.get("X-Asya-Size", "0")),
        etag=_etag(headers),
        content_type=content_type,
    )


async def _raise_for_error(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    raw = await response.read()
    body: Any
    if not raw and ERROR_CODE_HEADER in response.headers:
        # A HEAD answer: the code and message travel in headers.
        body = {
            "code": response.headers[ERROR_CODE_HEADER],
            "message": response.headers.get(ERROR_MESSAGE_HEADER, ""),
        }
    else:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
    try:
        code, message = body["code"], body["message"]
    except (KeyError, TypeError):
        raise BackendError(f"HTTP {response.status}: {raw[:200]!r}") from None
    cls = ERRORS_BY_CODE.get(code, ConnectorError)
    if cls is RangeNotSatisfiable:
        size = int(response.headers.get("Content-Range", "bytes */0").rpartition("/")[2])
        raise RangeNotSatisfiable(message, key=body.get("key"), size=size)
    raise cls(message, key=body.get("key"))
