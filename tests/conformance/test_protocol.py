"""Conformance through the server only: what the wire protocol adds to the interface.

Bad keys, directory stats, conditional reads and error bodies, sent as raw
HTTP requests over the connector's Unix socket.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from asya_state_connectors.client import HttpConnector

from .conftest import Target
from .helpers import put

BASE = "http://connector"


@pytest.fixture
async def raw(served: Target) -> AsyncIterator[aiohttp.ClientSession]:
    assert served.socket is not None
    session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=served.socket))
    yield session
    await session.close()


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
    served: Target, raw: aiohttp.ClientSession, why: str, encoded: str
) -> None:
    target = served
    for method in ("GET", "PUT", "DELETE"):
        url = URL(f"{BASE}/v1/objects/{target.ns}{encoded}", encoded=True)
        async with raw.request(method, url, data=b"x" if method == "PUT" else None) as response:
            body = json.loads(await response.read())
            assert response.status == 400, f"{method} with {why} key answered {response.status}"
            assert body["code"] == "invalid_key", body


async def test_directory_stat(served: Target, raw: aiohttp.ClientSession) -> None:
    target = served
    await put(target.connector, target.key("dir/sub/file.txt"), b"x")
    for path, kind in [
        ("dir", "directory"),
        ("dir/sub", "directory"),
        ("dir/sub/file.txt", "file"),
    ]:
        async with raw.head(URL(f"{BASE}/v1/objects/{target.ns}{path}", encoded=True)) as response:
            assert response.status == 200, path
            assert response.headers["X-Asya-Kind"] == kind, path
    async with raw.head(URL(f"{BASE}/v1/objects/{target.ns}di", encoded=True)) as response:
        assert response.status == 404, "a partial name is not a directory"
    async with raw.head(URL(f"{BASE}/v1/objects/", encoded=True)) as response:
        assert (response.status, response.headers["X-Asya-Kind"]) == (200, "directory")


async def test_conditional_read_answers_304(served: Target) -> None:
    target = served
    assert isinstance(target.connector, HttpConnector)
    meta = await put(target.connector, target.key("cached.json"), b"{}")
    assert await target.connector.read_if_none_match(target.key("cached.json"), meta.etag) == 304
    assert await target.connector.read_if_none_match(target.key("cached.json"), "stale") == 200


async def test_errors_have_stable_json_bodies(served: Target, raw: aiohttp.ClientSession) -> None:
    target = served
    async with raw.get(URL(f"{BASE}/v1/objects/{target.ns}missing", encoded=True)) as response:
        assert response.status == 404
        assert response.content_type == "application/json"
        body = await response.json()
        assert body["code"] == "not_found"
        assert body["key"] == f"{target.ns}missing"


async def test_head_errors_carry_their_code_in_headers(
    served: Target, raw: aiohttp.ClientSession
) -> None:
    """A HEAD answer has no body: its headers say what happened."""
    target = served
    await put(target.connector, target.key("f.txt"), b"file")
    cases = [("f.txt/x", 400, "not_a_directory"), ("missing", 404, "not_found")]
    for name, status, code in cases:
        url = URL(f"{BASE}/v1/objects/{target.ns}{name}", encoded=True)
        async with raw.head(url) as response:
            assert response.status == status
            assert response.headers["X-Asya-Error-Code"] == code
            message = response.headers["X-Asya-Error-Message"]
            assert target.ns in message
            assert await response.read() == b""


async def test_info_declares_capabilities(served: Target, raw: aiohttp.ClientSession) -> None:
    async with raw.get(f"{BASE}/v1/info") as response:
        info = await response.json()
    assert info["connector"] == served.name
    assert isinstance(info["capabilities"], list)
