"""Conformance through the server only: what the wire protocol adds to the interface.

Bad keys, directory stats, conditional reads and error bodies, sent as raw
HTTP requests over the connector's Unix socket.
"""

from __future__ import annotations

import pytest

from asya_state_connectors.client import HttpConnector

from .conftest import Target
from .helpers import put


@pytest.fixture
def raw(served: Target) -> HttpConnector:
    """Requests exactly as given, through the connector's own client."""
    assert isinstance(served.connector, HttpConnector)
    return served.connector


BAD_KEYS = [
    ("dotdot", "a/%2E%2E/b"),
    ("dot", "a/./b"),
    ("empty-segment", "a//b"),
    ("nul", "a%00b"),
    ("bad-escape", "a%zzb"),
    ("bad-utf8", "a%FF%FEb"),
    ("too-long", "k" * 1025),
    ("reserved", ".asya-tmp-x"),
]


@pytest.mark.parametrize(("why", "encoded"), BAD_KEYS, ids=[b[0] for b in BAD_KEYS])
async def test_bad_keys_get_400_invalid_key(
    served: Target, raw: HttpConnector, why: str, encoded: str
) -> None:
    target = served
    for method in ("GET", "PUT", "DELETE"):
        url = f"/v1/objects/{target.ns}{encoded}"
        answer = await raw.exchange(method, url, body=b"x" if method == "PUT" else None)
        assert answer.status == 400, f"{method} with {why} key answered {answer.status}"
        assert answer.json()["code"] == "invalid_key", answer.body


async def test_directory_stat(served: Target, raw: HttpConnector) -> None:
    target = served
    await put(target.connector, target.key("dir/sub/file.txt"), b"x")
    for path, kind in [
        ("dir", "directory"),
        ("dir/sub", "directory"),
        ("dir/sub/file.txt", "file"),
    ]:
        answer = await raw.exchange("HEAD", f"/v1/objects/{target.ns}{path}")
        assert answer.status == 200, path
        assert answer.header("X-Asya-Kind") == kind, path
    answer = await raw.exchange("HEAD", f"/v1/objects/{target.ns}di")
    assert answer.status == 404, "a partial name is not a directory"
    answer = await raw.exchange("HEAD", "/v1/objects/")
    assert (answer.status, answer.header("X-Asya-Kind")) == (200, "directory")


async def test_conditional_read_answers_304(served: Target) -> None:
    target = served
    assert isinstance(target.connector, HttpConnector)
    meta = await put(target.connector, target.key("cached.json"), b"{}")
    assert await target.connector.read_if_none_match(target.key("cached.json"), meta.etag) == 304
    assert await target.connector.read_if_none_match(target.key("cached.json"), "stale") == 200


async def test_errors_have_stable_json_bodies(served: Target, raw: HttpConnector) -> None:
    target = served
    answer = await raw.exchange("GET", f"/v1/objects/{target.ns}missing")
    assert answer.status == 404
    assert answer.header("Content-Type") == "application/json"
    body = answer.json()
    assert body["code"] == "not_found"
    assert body["key"] == f"{target.ns}missing"


async def test_head_errors_carry_their_code_in_headers(served: Target, raw: HttpConnector) -> None:
    """A HEAD answer has no body: its headers say what happened."""
    target = served
    await put(target.connector, target.key("f.txt"), b"file")
    cases = [("f.txt/x", 400, "not_a_directory"), ("missing", 404, "not_found")]
    for name, status, code in cases:
        answer = await raw.exchange("HEAD", f"/v1/objects/{target.ns}{name}")
        assert answer.status == status
        assert answer.header("X-Asya-Error-Code") == code
        message = answer.header("X-Asya-Error-Message")
        assert message is not None
        assert target.ns in message
        assert answer.body == b""


async def test_info_declares_capabilities(served: Target, raw: HttpConnector) -> None:
    info = (await raw.exchange("GET", "/v1/info")).json()
    assert info["connector"] == served.name
    assert isinstance(info["capabilities"], list)
