"""A retried mutating request (same ``Asya-Request-Id``) returns its original outcome.

The runtime sends a request again when its reply was lost (a timeout, a
dropped connection, a restarted connector). Each case here applies a request,
then sends exactly the same request again, as the runtime would: a backend
that declares the operation in ``idempotent_retries`` must answer success
with the same revision, apply nothing twice, and still refuse the same
request under another id.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from asya_state_connectors import idempotency
from asya_state_connectors.client import HttpConnector
from asya_state_connectors.idempotency import HEADER
from asya_state_connectors.interface import Capability, WriteCondition
from asya_state_connectors.registry import connector_class

from .conftest import Target
from .helpers import chunks_of


@pytest.fixture
def raw(served: Target) -> HttpConnector:
    """Requests exactly as given, through the connector's own client."""
    assert isinstance(served.connector, HttpConnector)
    return served.connector


def _declared(target: Target, operation: str, needs: Capability | None = None) -> None:
    cls = connector_class(target.name)
    if operation not in cls.idempotent_retries:
        pytest.skip(f"{target.name} does not declare idempotent {operation} retries")
    if needs is not None and needs not in cls.capabilities:
        pytest.skip(f"{target.name} has no {needs.value}")


def _url(target: Target, name: str, query: str = "") -> str:
    return f"/v1/objects/{target.ns}{name}{query}"


def _id() -> dict[str, str]:
    return {HEADER: uuid.uuid4().hex}


async def _send(
    raw: HttpConnector,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None = None,
) -> tuple[int, str | None]:
    answer = await raw.exchange(method, url, headers, body)
    return answer.status, answer.header("ETag")


async def _read(raw: HttpConnector, url: str) -> bytes | None:
    answer = await raw.exchange("GET", url)
    return answer.body if answer.status == 200 else None


async def test_conditional_write_retried(served: Target, raw: HttpConnector) -> None:
    _declared(served, "write", Capability.CAS)
    url = _url(served, "counter")
    status, first = await _send(raw, "PUT", url, _id(), b"0")
    assert status == 200
    assert first is not None
    once = {"If-Match": first, **_id()}
    status, etag = await _send(raw, "PUT", url, once, b"1")
    assert status == 200
    assert etag != first
    assert await _send(raw, "PUT", url, once, b"1") == (200, etag)
    assert await _read(raw, url) == b"1"
    # The same stale condition under another id is the conflict it always was.
    assert (await _send(raw, "PUT", url, {"If-Match": first, **_id()}, b"2"))[0] == 409
    assert await _read(raw, url) == b"1"


async def test_write_retried_after_another_writer(served: Target, raw: HttpConnector) -> None:
    """The hot-key window: applied, reply lost, another replica writes, then the retry arrives."""
    _declared(served, "write", Capability.CAS)
    _declared(served, "replaced")
    url = _url(served, "hot")
    _, first = await _send(raw, "PUT", url, _id(), b"0")
    once = {"If-Match": str(first), **_id()}
    status, mine = await _send(raw, "PUT", url, once, b"1")
    assert status == 200
    status, theirs = await _send(raw, "PUT", url, {"If-Match": str(mine), **_id()}, b"2")
    assert status == 200
    # Applied, with the revision it made: not the current one, so a write
    # based on it conflicts as it should, and nothing is written twice.
    assert await _send(raw, "PUT", url, once, b"1") == (200, mine)
    assert await _read(raw, url) == b"2"
    assert (await _send(raw, "PUT", url, {"If-Match": str(mine), **_id()}, b"3"))[0] == 409
    assert await _read(raw, url) == b"2"
    assert theirs not in (first, mine)


async def test_write_retried_after_many_other_writes(served: Target, raw: HttpConnector) -> None:
    """A connector restart on a hot key: many writes land before the retry; it is still known.

    Recognition is bounded by time (``idempotency.RECORD_SECONDS``), not by a
    number of writes: more than ``RECENT_WRITES`` others come between here.
    """
    _declared(served, "write", Capability.CAS)
    _declared(served, "replaced")
    url = _url(served, "busy")
    _, first = await _send(raw, "PUT", url, _id(), b"0")
    once = {"If-Match": str(first), **_id()}
    status, mine = await _send(raw, "PUT", url, once, b"1")
    assert status == 200
    latest = mine
    for n in range(idempotency.RECENT_WRITES + 4):
        status, latest = await _send(raw, "PUT", url, {"If-Match": str(latest), **_id()}, b"%d" % n)
        assert status == 200
    assert await _send(raw, "PUT", url, once, b"1") == (200, mine)
    assert await _read(raw, url) == b"%d" % (idempotency.RECENT_WRITES + 3)
    # A delete, retried after the key was made again and written many times.
    gone = {"If-Match": str(latest), **_id()}
    assert (await _send(raw, "DELETE", url, gone))[0] == 204
    _, latest = await _send(raw, "PUT", url, {"If-None-Match": "*", **_id()}, b"again")
    for _ in range(idempotency.RECENT_WRITES + 4):
        status, latest = await _send(raw, "PUT", url, {"If-Match": str(latest), **_id()}, b"x")
        assert status == 200
    assert (await _send(raw, "DELETE", url, gone))[0] == 204
    assert await _read(raw, url) == b"x"


async def test_create_only_retried(served: Target, raw: HttpConnector) -> None:
    _declared(served, "create", Capability.CREATE_ONLY)
    url = _url(served, "made")
    once = {"If-None-Match": "*", **_id()}
    status, etag = await _send(raw, "PUT", url, once, b"new")
    assert status == 200
    assert await _send(raw, "PUT", url, once, b"new") == (200, etag)
    assert (await _send(raw, "PUT", url, {"If-None-Match": "*", **_id()}, b"x"))[0] == 409
    assert await _read(raw, url) == b"new"


async def test_delete_retried(served: Target, raw: HttpConnector) -> None:
    _declared(served, "delete", Capability.CAS)
    url = _url(served, "gone")
    _, etag = await _send(raw, "PUT", url, _id(), b"x")
    assert etag is not None
    once = {"If-Match": etag, **_id()}
    assert (await _send(raw, "DELETE", url, once))[0] == 204
    assert (await _send(raw, "DELETE", url, once))[0] == 204
    assert (await _send(raw, "DELETE", url, _id()))[0] == 404
    assert (await _send(raw, "DELETE", url, {"If-Match": etag, **_id()}))[0] in (404, 409)


async def test_delete_retried_after_recreate(served: Target, raw: HttpConnector) -> None:
    _declared(served, "delete", Capability.CAS)
    _declared(served, "replaced")
    url = _url(served, "again")
    _, etag = await _send(raw, "PUT", url, _id(), b"x")
    once = {"If-Match": str(etag), **_id()}
    assert (await _send(raw, "DELETE", url, once))[0] == 204
    assert (await _send(raw, "PUT", url, {"If-None-Match": "*", **_id()}, b"y"))[0] == 200
    # The retry is answered as done and deletes nothing of the new object.
    assert (await _send(raw, "DELETE", url, once))[0] == 204
    assert await _read(raw, url) == b"y"


async def test_rename_retried(served: Target, raw: HttpConnector) -> None:
    _declared(served, "rename")
    source, target = _url(served, "from"), _url(served, "to")
    await _send(raw, "PUT", source, _id(), b"moved")
    query = f"?op=rename&to={served.ns}to"
    once = _id()
    status, etag = await _send(raw, "POST", _url(served, "from", query), once)
    assert status == 200
    assert await _send(raw, "POST", _url(served, "from", query), once) == (200, etag)
    assert (await _send(raw, "POST", _url(served, "from", query), _id()))[0] == 404
    assert await _read(raw, target) == b"moved"


async def test_append_retried(served: Target, raw: HttpConnector) -> None:
    _declared(served, "append")
    url = _url(served, "log", "?op=append")
    once = _id()
    status, etag = await _send(raw, "POST", url, once, b"line\n")
    assert status == 200
    assert await _send(raw, "POST", url, once, b"line\n") == (200, etag)
    assert await _read(raw, _url(served, "log")) == b"line\n"
    if "replaced" not in connector_class(served.name).idempotent_retries:
        return
    # Another append came in between: the retry still appends nothing.
    assert (await _send(raw, "POST", url, _id(), b"next\n"))[0] == 200
    assert await _send(raw, "POST", url, once, b"line\n") == (200, etag)
    assert await _read(raw, _url(served, "log")) == b"line\nnext\n"


# Above one part of S3 and GCS (8 MiB by default: a multipart upload, a
# composed upload) and Redis's inline value (a staged one).
LARGE = 8 * 1024 * 1024 + 1024


async def test_large_writes_retried(served: Target, raw: HttpConnector) -> None:
    """Multipart (S3), composed (GCS) and staged (Redis) writes are recognised like small ones."""
    _declared(served, "create", Capability.CREATE_ONLY)
    _declared(served, "write", Capability.CAS)
    limit = connector_class(served.name).max_object_size
    if limit is not None and limit < LARGE:
        pytest.skip(f"{served.name} stores at most {limit} bytes")
    url = _url(served, "big")
    first, second = os.urandom(LARGE), os.urandom(LARGE)
    made = {"If-None-Match": "*", **_id()}
    status, created = await _send(raw, "PUT", url, made, first)
    if status == 413:
        pytest.skip(f"{served.name} stores no value of {LARGE} bytes here")
    assert status == 200
    assert await _send(raw, "PUT", url, made, first) == (200, created)
    once = {"If-Match": str(created), **_id()}
    status, etag = await _send(raw, "PUT", url, once, second)
    assert status == 200
    assert await _send(raw, "PUT", url, once, second) == (200, etag)
    assert await _read(raw, url) == second
    if etag == created:
        return  # fake-gcs-server keeps the generation when a compose replaces an object
    assert (await _send(raw, "PUT", url, {"If-Match": str(created), **_id()}, first))[0] == 409


async def test_records_of_retries_are_not_files(served: Target, raw: HttpConnector) -> None:
    """Whatever a backend keeps to recognise retries never shows in a listing."""
    url = _url(served, "d/x")
    assert (await _send(raw, "PUT", url, _id(), b"x"))[0] == 200
    assert (await _send(raw, "DELETE", url, _id()))[0] == 204
    for query in (f"prefix={served.ns}", f"prefix={served.ns}&delimiter=", ""):
        answer = await raw.exchange("GET", f"/v1/list?{query}")
        assert answer.status == 200
        page = json.loads(answer.body)
        names = [e["key"] for e in page["entries"]] + page["prefixes"]
        assert not [n for n in names if ".asya" in n], names


async def test_malformed_request_id_is_refused(served: Target, raw: HttpConnector) -> None:
    status, _ = await _send(raw, "PUT", _url(served, "k"), {HEADER: "no spaces allowed"}, b"x")
    assert status == 400


async def test_delete_records_are_swept_after_the_window(target: Target) -> None:
    """A store without expiry (S3, GCS) deletes its records once they are past the window."""
    sweep = getattr(target.connector, "sweep_records", None)
    if sweep is None:
        pytest.skip(f"{target.name} keeps no records to sweep")
    key = target.key("swept")
    meta = await target.connector.write(key, chunks_of(b"x"))
    request_id = uuid.uuid4().hex
    bound = idempotency.bind(request_id)
    try:
        await target.connector.delete(key, condition=WriteCondition(if_match=meta.etag))
    finally:
        idempotency.unbind(bound)
    now = time.time()
    assert await target.connector.applied_delete(key, request_id)
    await sweep(now)
    assert await target.connector.applied_delete(key, request_id)
    assert await sweep(now + idempotency.RECORD_SECONDS + 60) >= 1
    assert not await target.connector.applied_delete(key, request_id)
