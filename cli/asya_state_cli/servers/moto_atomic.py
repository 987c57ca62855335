"""moto's S3 server with conditional writes made atomic, for ``MotoServer``.

Owns: the process that ``MotoServer`` launches
(``python -m asya_state_cli.servers.moto_atomic -H 127.0.0.1 -p PORT``): the
same WSGI application, request handler and threaded werkzeug server that
moto's own ``moto_server`` command runs, wrapped so that every write
carrying ``If-Match`` or ``If-None-Match`` runs alone, ``If-Match`` on
CompleteMultipartUpload is enforced, and a clean exit (status 0) on SIGTERM
or SIGINT.

Why: moto answers a conditional PUT (and a conditional CompleteMultipartUpload)
by first comparing the header with the stored object and then storing the new
one, two separate steps with nothing holding them together, while the server
handles requests on concurrent threads. Two writers that both read ETag X can
then both pass the check, and both succeed: one update is lost. S3 arbitrates
conditional writes atomically (exactly one winner, the rest get 412), and the
compare-and-swap connectors rely on that, so the tests need it too. Reads
(GET, HEAD) are never serialized: a read pinned by ``If-Match`` needs no
ordering, and the connectors fan one read out over many of them.

moto checks ``If-None-Match`` on CompleteMultipartUpload but ignores
``If-Match``, which S3 enforces (412 when the object is missing or has
another ETag); the middleware checks it against moto's own store, inside the
same lock, so a large compare-and-swap write is tested as S3 runs it.

moto also answers a ranged GET by reading the whole object and slicing it,
so every 8 MiB part of a 1 GiB object costs a 1 GiB copy: the emulator, not
the client, would set the pace of any parallel download. For a GET with one
plain byte range, the object's bytes stand in lazily (``_RangedValue``), so
only the range is read; the answer is otherwise moto's own.

Must not: bind anything but the host it is given (``MotoServer`` passes
127.0.0.1), serialize unconditional requests (they stay concurrent), or
change what moto answers; it only orders conditional requests one after
another.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import FrameType
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

# The WSGI environ keys of the request headers that make a request conditional.
CONDITIONAL_HEADERS = ("HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH")


READS = frozenset({"GET", "HEAD"})
PRECONDITION_FAILED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>'
    b"<Message>At least one of the pre-conditions you specified did not hold</Message>"
    b"<Condition>If-Match</Condition></Error>"
)


def is_conditional(environ: WSGIEnvironment) -> bool:
    """Whether the request is a write carrying ``If-Match`` or ``If-None-Match``."""
    if environ.get("REQUEST_METHOD") in READS:
        return False
    return any(key in environ for key in CONDITIONAL_HEADERS)


def _completion_target(environ: WSGIEnvironment) -> tuple[str, str] | None:
    """(bucket, key) of a path-style CompleteMultipartUpload carrying If-Match, else None."""
    if environ.get("REQUEST_METHOD") != "POST" or "HTTP_IF_MATCH" not in environ:
        return None
    if "uploadId=" not in environ.get("QUERY_STRING", ""):
        return None
    # WSGI hands the path over as latin-1 decoded bytes.
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
    bucket, _, key = path.lstrip("/").partition("/")
    return (bucket, key) if bucket and key else None


def current_etag(bucket: str, key: str) -> str | None:
    """The ETag (quotes stripped) moto stores for ``bucket``/``key``, in any account."""
    from moto.s3.models import s3_backends

    for account in list(s3_backends.keys()):
        for backend in s3_backends[account].values():
            if bucket in backend.buckets:
                found = backend.get_object(bucket, key)
                return None if found is None else str(found.etag).strip('"')
    return None


def if_match_holds(environ: WSGIEnvironment) -> bool:
    """False for a CompleteMultipartUpload whose If-Match names another (or no) object."""
    target = _completion_target(environ)
    if target is None:
        return True
    wanted = str(environ["HTTP_IF_MATCH"]).strip().strip('"')
    stored = current_etag(*target)
    if wanted == "*":
        return stored is not None
    return stored == wanted


class SerializedConditionals:
    """WSGI middleware: conditional requests run one at a time, others freely.

    One lock for the whole process, held from calling the application until
    its response iterable is exhausted and closed, so each conditional
    request is handled as one step however the application divides its work
    between the call and the iteration: the next one sees what this one
    stored. The lock is also held while the request body arrives, so large
    conditional uploads queue behind each other; unconditional requests
    (part uploads, plain reads and writes) never touch it.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not is_conditional(environ):
            return self._app(environ, start_response)
        return self._alone(environ, start_response)

    def _alone(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        # A generator: the server iterates it and closes it (also when the
        # client goes away), which ends the ``with`` and releases the lock.
        with self._lock:
            if not if_match_holds(environ):
                start_response(
                    "412 Precondition Failed",
                    [
                        ("Content-Type", "application/xml"),
                        ("Content-Length", str(len(PRECONDITION_FAILED))),
                    ],
                )
                yield PRECONDITION_FAILED
                return
            response = self._app(environ, start_response)
            try:
                yield from response
            finally:
                close = getattr(response, "close", None)
                if close is not None:
                    close()


# One plain byte range (``first-last``, ``first-`` or ``-suffix``), the only kind served lazily.
_SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_ranged = threading.local()


class _RangedValue:
    """An object's bytes in a single-range GET: its length, and reads of the slice asked for."""

    def __init__(self, key: Any) -> None:
        self._key = key

    def __len__(self) -> int:
        return int(self._key.size)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, span: slice) -> bytes:
        start, stop, _ = span.indices(len(self))
        with self._key.lock:
            self._key._value_buffer.seek(start)
            data: bytes = self._key._value_buffer.read(max(0, stop - start))
            return data


def _plain_range(request: Any, full_url: str) -> bool:
    if request.method != "GET" or "partNumber" in full_url:
        return False
    match = _SINGLE_RANGE.fullmatch(request.headers.get("range") or "")
    if match is None or match.group(1) == match.group(2) == "":
        return False
    first, last = match.groups()
    return not (first and last and int(last) < int(first))


def serve_ranges_lazily() -> None:
    """Let moto read only the range of a single-range GET (see the module docstring)."""
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response

    whole: property = FakeKey.__dict__["value"]
    read_whole: Callable[[Any], bytes] = whole.fget  # type: ignore[assignment]

    def value(self: Any) -> Any:
        if getattr(_ranged, "on", False):
            return _RangedValue(self)
        return read_whole(self)

    FakeKey.value = property(value, whole.fset)  # type: ignore[assignment,method-assign]
    respond = S3Response.key_response

    def key_response(self: Any, request: Any, full_url: str, headers: Any) -> Any:
        _ranged.on = _plain_range(request, full_url)
        try:
            answer = respond(self, request, full_url, headers)
        finally:
            _ranged.on = False
        if isinstance(answer, tuple) and isinstance(answer[-1], _RangedValue):
            # Not sliced after all (an empty object, say): the whole bytes, as moto sends them.
            answer = (*answer[:-1], answer[-1][:])
        return answer

    S3Response.key_response = key_response  # type: ignore[method-assign]


def build_app() -> WSGIApplication:
    """moto's dispatching application (every service), behind the middleware."""
    serve_ranges_lazily()
    return SerializedConditionals(DomainDispatcherApplication(create_backend_app))


def exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """SIGTERM and SIGINT end the server with status 0, as ``moto_server`` does."""
    sys.exit(0)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m asya_state_cli.servers.moto_atomic",
        description="moto's server with atomic conditional writes",
    )
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("-p", "--port", type=int, required=True, help="port to listen on")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # moto finds its own port in MOTO_PORT where it calls itself back (Lambda,
    # Step Functions); ``moto_server`` sets it the same way.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, exit_cleanly)
    signal.signal(signal.SIGINT, exit_cleanly)
    run_simple(
        args.host,
        args.port,
        build_app(),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
