"""The wire protocol served for any connector (see ../openapi.yaml).

Owns: dispatching requests to connector methods, streaming bodies both ways
in bounded chunks, enforcing declared capabilities and the size limit, and
turning ConnectorError into JSON error responses. Request bookkeeping for a
graceful drain lives here too (in-flight count, draining flag).

Must not: know any backend, or hold a whole request or response body in memory.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from .. import idempotency
from ..errors import (
    ERROR_CODE_HEADER,
    ERROR_MESSAGE_HEADER,
    BackendError,
    BackendUnavailable,
    BadRequest,
    Conflict,
    ConnectorError,
    Draining,
    IsADirectory,
    NotFound,
    RangeNotSatisfiable,
    RequestTimeout,
    TooLarge,
    Unsupported,
)
from ..interface import (
    Capability,
    Connector,
    Kind,
    Missing,
    ObjectMeta,
    WriteCondition,
    check_content_type,
    valid_content_type,
)
from ..keys import validate_key
from . import arguments
from .http import BodyTimeout, Request, Response, StreamResponse, json_response
from .observability import Metrics, key_hash
from .response_head import http_date

log = logging.getLogger("asya_state_connectors.server")

CHUNK = 256 * 1024
# How long /ready waits for the backend; ``asya-state probe`` waits 3 s for the answer.
READY_CHECK_SECONDS = 2.0
Answer = Response | StreamResponse
Handler = Callable[[Request, str, dict[str, str]], Awaitable[Answer]]


MAX_HEADER_MESSAGE = 200


def header_text(message: str) -> str:
    """``message`` as one printable-ASCII header value: escapes for anything else, bounded."""
    text = message.encode("unicode_escape").decode("ascii")
    return text if len(text) <= MAX_HEADER_MESSAGE else text[: MAX_HEADER_MESSAGE - 3] + "..."


def error_response(exc: ConnectorError) -> Response:
    headers = {ERROR_CODE_HEADER: exc.code, ERROR_MESSAGE_HEADER: header_text(exc.message)}
    if isinstance(exc, RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{exc.size}"
    elif isinstance(exc, _MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allowed)
    response = json_response(exc.status, exc.to_json(), headers)
    if isinstance(exc, Draining):
        response.force_close()
    return response


def meta_headers(meta: ObjectMeta) -> dict[str, str]:
    headers: dict[str, str] = {}
    headers["ETag"] = arguments.quote_etag(meta.etag)
    headers["X-Asya-Size"] = str(meta.size)
    headers["X-Asya-Kind"] = "file"
    # A content type stored by other means (an xattr set on the directory
    # itself) that could not be sent as a header is left out, not sent.
    if meta.content_type and valid_content_type(meta.content_type):
        headers["Content-Type"] = meta.content_type
    if meta.last_modified is not None:
        headers["X-Asya-Mtime"] = repr(meta.last_modified)
        headers["Last-Modified"] = http_date(meta.last_modified)
    return headers


class ProtocolApp:
    """Serves one connector; create one per server."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self.metrics = Metrics(connector.name)
        self.draining = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._request_ids = itertools.count(1)

    # -- entry point ------------------------------------------------------

    async def handle(self, request: Request) -> Answer:
        started = time.perf_counter()
        self.in_flight += 1
        self._idle.clear()
        operation, rest, status, code = "unknown", "", 500, None
        try:
            if self.draining:
                raise Draining("the connector is shutting down")
            path, params = arguments.split_target(request.target)
            handler, operation, rest = self._route(request.method, path)
            request_id = None
            if request.method in _MUTATING:
                request_id = idempotency.parse(request.headers.get(idempotency.HEADER))
            bound = idempotency.bind(request_id)
            try:
                response = await handler(request, rest, params)
            finally:
                idempotency.unbind(bound)
            status = response.status
            return response
        except ConnectorError as exc:
            status, code = exc.status, exc.code
            return error_response(exc)
        except (ConnectionResetError, asyncio.CancelledError):
            status = 499  # the client went away; nothing to answer
            raise
        except Exception:
            log.exception("unexpected error in %s", operation)
            status, code = 500, "backend_error"
            return error_response(BackendError("internal connector error"))
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()
            elapsed = time.perf_counter() - started
            self.metrics.observe(operation, status, elapsed, code)
            level = (
                logging.WARNING
                if status >= 500 and code not in ("draining", "unsupported")
                else logging.DEBUG
            )
            if log.isEnabledFor(level):
                log.log(
                    level,
                    "%s %s",
                    operation,
                    status,
                    extra={
                        "request_id": request.headers.get("X-Request-Id")
                        or f"{next(self._request_ids):x}",
                        "operation": operation,
                        "key_hash": key_hash(rest) if rest else None,
                        "status": status,
                        "code": code,
                        "duration_ms": round(elapsed * 1000, 3),
                        "connector": self.connector.name,
                    },
                )

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def _route(self, method: str, path: str) -> tuple[Handler, str, str]:
        if path.startswith(arguments.OBJECTS):
            rest = path[len(arguments.OBJECTS) :]
            table: dict[str, tuple[Handler, str]] = {
                "GET": (self.read, "read"),
                "HEAD": (self.stat, "stat"),
                "PUT": (self.write, "write"),
                "POST": (self.action, "action"),
                "DELETE": (self.delete, "delete"),
            }
            if not rest:  # the mount root can only be stat'ed
                table = {"HEAD": table["HEAD"]}
        elif path.startswith(arguments.XATTRS):
            rest = path[len(arguments.XATTRS) :]
            table = {
                "GET": (self.get_xattr, "xattr_get"),
                "PUT": (self.set_xattr, "xattr_set"),
                "DELETE": (self.remove_xattr, "xattr_remove"),
            }
        else:
            rest = ""
            fixed: dict[str, tuple[Handler, str]] = {
                f"{arguments.API}/list": (self.list, "list"),
                f"{arguments.API}/health": (self.health, "health"),
                f"{arguments.API}/ready": (self.ready, "ready"),
                f"{arguments.API}/info": (self.info, "info"),
                "/metrics": (self.render_metrics, "metrics"),
            }
            if path not in fixed:
                raise _NotFoundRoute(path)
            table = {"GET": fixed[path], "HEAD": fixed[path]}
        if method not in table:
            raise _MethodNotAllowed(method, sorted(table))
        handler, operation = table[method]
        return handler, operation, rest

    # -- objects ----------------------------------------------------------

    async def read(self, request: Request, rest: str, params: dict[str, str]) -> Answer:
        key = arguments.object_key(rest)
        spec = arguments.byte_range(request.headers.get("Range"))
        try:
            stream = await self.connector.looked_up(key, self.connector.read(key, spec))
        except Missing as exc:
            if exc.conflict is not None:
                raise exc.conflict from exc
            raise
        try:
            headers = meta_headers(stream.meta)
            if_none_match = request.headers.get("If-None-Match")
            if if_none_match is not None and _etag_matches(if_none_match, stream.meta.etag):
                return Response(304, headers={"ETag": headers["ETag"]})
            status = 200
            if spec is not None:
                status = 206
                end = stream.start + stream.length - 1
                headers["Content-Range"] = f"bytes {stream.start}-{end}/{stream.meta.size}"
            headers.setdefault("Content-Type", "application/octet-stream")
            response = StreamResponse(status, headers, stream.length)
            await response.prepare(request)
            sent = 0
            try:
                async for chunk in stream.chunks:
                    sent += len(chunk)
                    await response.write(chunk)
            finally:
                self.metrics.add_bytes("out", sent)
            await response.write_eof()
            return response
        finally:
            await stream.aclose()

    async def stat(self, request: Request, rest: str, params: dict[str, str]) -> Answer:
        key = arguments.object_key(rest, allow_empty=True)
        if key and arguments.flag(params, "probe"):
            # The os.path predicates: what is there, not why nothing is.
            found = await self.connector.probe(key)
            if found is Kind.MISSING:
                raise NotFound(f"no object at {key!r}", key=key)
            if isinstance(found, ObjectMeta):
                return Response(200, headers=meta_headers(found))
        elif key:
            try:
                meta = await self.connector.looked_up(key, self.connector.stat(key))
            except Missing as exc:
                if exc.conflict is None:
                    raise
                if not isinstance(exc.conflict, IsADirectory):
                    raise exc.conflict from exc
            else:
                headers = meta_headers(meta)
                headers["Content-Length"] = str(meta.size)  # what a GET would send
                return Response(200, headers=headers)
        return Response(200, headers={"X-Asya-Kind": "directory", "X-Asya-Size": "0"})

    async def write(self, request: Request, rest: str, params: dict[str, str]) -> Answer:
        key = arguments.object_key(rest)
        condition = arguments.write_condition(
            request.headers.get("If-Match"), request.headers.get("If-None-Match")
        )
        self._check_condition(condition, key)
        content_type = request.headers.get("Content-Type")
        check_content_type(content_type, key=key)
        size = request.content_length
        try:
            meta = await self.connector.write(
                key,
                self._body(request, key),
                size=size,
                condition=condition,
                content_type=content_type,
            )
        except Conflict as exc:
            meta = await self._retried_write(key, exc)
        return Response(200, headers=_written(meta))

    async def _retried_write(self, key: str, failure: ConnectorError) -> ObjectMeta:
        """The current metadata if the current object is this request's own write, else re-raise.

        Runs only on a failed condition: a retry whose first attempt was
        applied (its reply lost) fails its condition against its own result.
        """
        request_id = idempotency.current()
        if request_id is not None:
            meta = await self.connector.applied_write(key, request_id)
            if meta is not None:
                return meta
        raise failure

    async def action(self, request: Request, rest: str, params: dict[str, str]) -> Answer:
        key = arguments.object_key(rest)
        op = params.get("op")
        if op == "append":
            if not self.connector.supports(Capability.APPEND):
                raise Unsupported(f"{self.connector.name} does not support append", key=key)
            meta = await self.connector.append(key, self._body(request, key))
        elif op in ("copy", "rename"):
            target = validate_key(arguments.decode_key_param(params.get("to", "")))
            if op == "copy":
                meta = await self.connector.copy(key, target)
            else:
                try:
                    meta = await self.connector.rename(key, target)
                except NotFound as exc:
                    # A retried rename finds its source gone: it was moved by this request.
                    meta = await self._retried_write(target, exc)
        else:
            raise BadRequest("op must be one of append, copy, rename", key=key)
        return Response(200, headers=_written(meta))

    async def delete(self, request: Request, rest: str, params: dict[str, str]) -> Answer:
        key = arguments.object_key(rest)
        condition = arguments.write_condition(request.headers.get("If-Match"), None)
        self._check_condition(condition, key)
        try:
            await self.connector.delete(key, condition=condition)
        except (NotFound, Conflict):
            request_id = idempotency.current()
            if request_id is None or not await self.connector.applied_delete(key, request_id):
                raise
        return Response(204)

    async def list(self, request: Request, rest: str, params: dict[str, str]) -> Answer:
        prefix, delimiter, token, limit = arguments.list_params(params)
        page = await self.connector.list(prefix, delimiter=delimiter, page_token=token, limit=limit)
        return json_response(
            200,
            {
                "entries": [
                    {
                        "key": m.key,
                        "size": m.size,
                        "etag": m.etag,
                        "content_type": m.content_type,
                        "last_modified": m.last_modified,
                    }
                    for m in page.entries
                ],
                "prefixes": page.prefixes,
                "next_page_token": page.next_token,
            },
        )

    # -- attributes ---------------------------------------------------------

    async def get_xattr(self, request: Request, rest: str, params: dict[str, str]) -> Answer:
        key = arguments.object_key(rest)
        name = arguments.xattr_name(params, required=False)
        if name is None:
            return json_response(200, {"attributes": await self.connector.get_xattrs(key)})
        value = await self.connector.get_xattr(key, name)
        return Response(200, body=value.encode(), content_type="text/plain; charset=utf-8")

    async def set_xattr(self, request: Request, rest: str, params: dict[str, str]) -> Answer:
        key = arguments.object_key(rest)
        name = arguments.xattr_name(params, required=True)
        assert name is not None
        self._check_writable(key, name)
        raw = await request.content.read(4097)
        if len(raw) > 4096:
            raise TooLarge("attribute values are limited to 4096 bytes", key=key)
        self._check_complete(request, key, "the attribute value was cut off")
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("attribute values must be UTF-8 text", key=key) from None
        if name == "content_type":
            check_content_type(value, key=key, field="user.asya.content_type")
        await self.connector.set_xattr(key, name, value)
        return Response(204)

    async def remove_xattr(self, request: Request, rest: str, params: dict[str, str]) -> Answer:
        key = arguments.object_key(rest)
        name = arguments.xattr_name(params, required=True)
        assert name is not None
        self._check_writable(key, name)
        await self.connector.remove_xattr(key, name)
        return Response(204)

    # -- service ----------------------------------------------------------

    async def health(self, request: Request, rest: str, params: dict[str, str]) -> Answer:
        return json_response(200, {"status": "ok"})

    async def ready(self, request: Request, rest: str, params: dict[str, str]) -> Answer:
        # Answer within the probe's own timeout: a backend that does not
        # answer is reported as that, not as a probe that timed out.
        try:
            async with asyncio.timeout(READY_CHECK_SECONDS) as limit:
                await self.connector.check_health()
        except TimeoutError:
            if not limit.expired():
                raise
            raise BackendUnavailable(
                f"{self.connector.name}: the backend did not answer the readiness check "
                f"within {READY_CHECK_SECONDS:g}s"
            ) from None
        return json_response(200, {"status": "ready"})

    async def render_metrics(self, request: Request, rest: str, params: dict[str, str]) -> Answer:
        return metrics_response(self.metrics)

    async def info(self, request: Request, rest: str, params: dict[str, str]) -> Answer:
        return json_response(200, dict(self.connector.describe()))

    # -- helpers ----------------------------------------------------------

    def _check_condition(self, condition: WriteCondition, key: str) -> None:
        if condition.if_match is not None and not self.connector.supports(Capability.CAS):
            raise Unsupported(
                f"{self.connector.name} does not support conditional writes (If-Match)", key=key
            )
        if condition.if_none_match and not self.connector.supports(Capability.CREATE_ONLY):
            raise Unsupported(f"{self.connector.name} does not support create-only writes", key=key)

    def _check_writable(self, key: str, name: str) -> None:
        if name == "ttl" and not self.connector.supports(Capability.TTL):
            raise Unsupported(f"{self.connector.name} has no TTL support", key=key)
        if name not in self.connector.writable_xattrs:
            raise Unsupported(f"user.asya.{name} is read-only on {self.connector.name}", key=key)

    async def _body(self, request: Request, key: str) -> AsyncIterator[bytes]:
        """The request body in bounded chunks, enforcing the size limit and completeness."""
        limit = self.connector.max_object_size
        declared = request.content_length
        if limit is not None and declared is not None and declared > limit:
            raise TooLarge(f"{declared} bytes exceed the limit of {limit}", key=key)
        received = 0
        async for chunk in request.content.iter_chunked(CHUNK):
            received += len(chunk)
            self.metrics.add_bytes("in", len(chunk))
            if limit is not None and received > limit:
                raise TooLarge(f"the body exceeds the limit of {limit} bytes", key=key)
            yield chunk
        self._check_complete(request, key, "the request body was cut off")
        if declared is not None and received != declared:
            raise BadRequest(f"body ended after {received} of {declared} bytes", key=key)

    @staticmethod
    def _check_complete(request: Request, key: str, message: str) -> None:
        cause = request.content.exception()
        if isinstance(cause, BodyTimeout):
            raise RequestTimeout(str(cause), key=key)
        if cause is not None:
            raise BadRequest(message, key=key)


_MUTATING = frozenset({"PUT", "POST", "DELETE"})


def metrics_response(metrics: Metrics) -> Response:
    return Response(
        200, body=metrics.render().encode(), content_type="text/plain; version=0.0.4; charset=utf-8"
    )


def _written(meta: ObjectMeta) -> dict[str, str]:
    return {"ETag": arguments.quote_etag(meta.etag), "X-Asya-Size": str(meta.size)}


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [part.strip() for part in header.split(",")]
    return "*" in candidates or any(arguments.parse_etag(c) == etag for c in candidates if c)


class _NotFoundRoute(ConnectorError):
    status = 404
    code = "not_found"

    def __init__(self, path: str) -> None:
        super().__init__(f"no such endpoint: {path[:200]}")


class _MethodNotAllowed(ConnectorError):
    status = 405
    code = "bad_request"

    def __init__(self, method: str, allowed: list[str]) -> None:
        super().__init__(f"method {method} not allowed here; allowed: {', '.join(allowed)}")
        self.allowed = allowed
