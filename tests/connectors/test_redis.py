"""redis-buffered-cas specifics beyond the conformance suite, against real redis-server processes.

Compare-and-swap between independent clients, the storage layout other
Redis clients see, the name index (no SCAN on any request, objects stored
before it indexed on first use, vanished names pruned, ``asya-state reindex``), staged uploads, reads that
overlap an overwrite, expiry, ACLs, TLS, Unix sockets, configuration errors,
and an outage with recovery (directly and through a connector process).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from asya_state_cli.connector_process import ConnectorProcess
from asya_state_cli.servers.redis import RedisServer
from asya_state_connectors.backends.redis import scripts as lua
from asya_state_connectors.backends.redis.backend import RedisBufferedCas
from asya_state_connectors.client import HttpConnector
from asya_state_connectors.errors import (
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    Conflict,
    ConnectorError,
    IsADirectory,
    NotADirectory,
    NotFound,
    PermissionDenied,
    TooLarge,
)
from asya_state_connectors.interface import (
    Connector,
    Kind,
    ListPage,
    Missing,
    ObjectMeta,
    RangeSpec,
    WriteCondition,
)
from asya_state_connectors.settings import Settings
from tests.conformance.helpers import (
    chunks_of,
    digest_of,
    failing_body,
    get,
    pattern_body,
    pattern_digest,
    put,
)
from tests.memory import PeakRss

MiB = 1024 * 1024


def make(url: str, prefix: str, **env: str) -> RedisBufferedCas:
    return RedisBufferedCas.from_settings(
        Settings({"REDIS_URL": url, "STATE_PREFIX": prefix, **env})
    )


@pytest.fixture
def prefix() -> str:
    return f"unit-{uuid.uuid4().hex[:10]}/"


@pytest.fixture
async def connector(redis_server: RedisServer, prefix: str) -> AsyncIterator[RedisBufferedCas]:
    opened = make(redis_server.url, prefix, REDIS_MAX_VALUE_BYTES=str(8 * MiB))
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, limit: float = 20.0) -> None:
    """Poll a condition with a generous bound; the bound is a hang guard, not an assertion on speed."""
    deadline = time.monotonic() + limit
    while not await check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.1)


# -- compare-and-swap between independent clients -------------------------------


async def test_staged_writers_racing_on_one_revision_leave_one_whole_value(
    redis_server: RedisServer, prefix: str
) -> None:
    first, second = make(redis_server.url, prefix), make(redis_server.url, prefix)
    try:
        read = await put(first, "big.bin", b"seed")
        bodies = [bytes([n]) * (3 * MiB + 17) for n in (1, 2)]
        outcomes = await asyncio.gather(
            *(
                c.write("big.bin", chunks_of(b), condition=WriteCondition(if_match=read.etag))
                for c, b in zip((first, second), bodies)
            ),
            return_exceptions=True,
        )
        assert sum(isinstance(o, ObjectMeta) for o in outcomes) == 1, outcomes
        stored = await get(first, "big.bin")
        assert stored in bodies, "a staged write mixed two bodies"
    finally:
        await first.close()
        await second.close()


async def test_a_retried_script_reports_its_own_success_not_a_conflict(
    raw: aioredis.Redis, prefix: str
) -> None:
    """A lost reply makes the client run the script again; it must not call its own write a conflict."""
    write = raw.register_script(lua.WRITE)
    root = prefix.encode()
    data = root + b"retried"
    index = root + lua.INDEX_SUFFIX
    keys = [data, data + lua.META_SUFFIX, index]
    # ARGV: condition, new etag, content type, number of ancestors (none here), root, name,
    # milliseconds a request's record lives (0: none), value.
    args = [0, root, "retried", 0]
    assert (await write(keys=keys, args=["*", "e1", "", *args, b"v1"]))[0] == lua.NEEDS_INDEX
    await raw.zadd(index, {lua.COMPLETE: 0})
    assert (await write(keys=keys, args=["*", "e1", "", *args, b"v1"]))[0] == lua.OK
    for _ in range(2):
        assert (await write(keys=keys, args=["e1", "e2", "", *args, b"v2"]))[0] == lua.OK
    assert await raw.get(data) == b"v2"
    assert (await write(keys=keys, args=["e1", "e3", "", *args, b"v3"]))[0] == lua.CONFLICT
    assert await raw.zrange(index, 0, -1) == [lua.COMPLETE, b"retried"]
    # With a record, a retry is recognised after another writer replaced the value.
    recorded = [0, root, "retried", 60_000]
    done = await write(keys=keys, args=["e2", "e4", "", *recorded, b"v4"])
    assert done[0] == lua.OK
    assert (await write(keys=keys, args=["e4", "e5", "", *args, b"v5"]))[0] == lua.OK
    assert await write(keys=keys, args=["e2", "e4", "", *recorded, b"v4"]) == done
    assert await raw.get(data) == b"v5"
    assert 0 < await raw.pttl(data + lua.REQUEST_INFIX + b"e4") <= 60_000


# -- the script connections ------------------------------------------------------


async def test_scripts_the_server_forgot_are_loaded_again(
    connector: RedisBufferedCas, raw: aioredis.Redis
) -> None:
    await put(connector, "flushed.txt", b"before")
    await raw.script_flush()  # what a restart without persistence also does
    assert await get(connector, "flushed.txt") == b"before"
    await put(connector, "flushed.txt", b"after")
    assert await get(connector, "flushed.txt") == b"after"


async def test_connections_the_server_dropped_are_replaced_without_an_error(
    connector: RedisBufferedCas, raw: aioredis.Redis
) -> None:
    await put(connector, "killed.txt", b"value")
    for _ in range(3):
        # Every idle connection of the connector goes, as on a server-side timeout.
        await raw.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        assert await get(connector, "killed.txt") == b"value"


async def test_concurrent_scripts_use_at_most_the_configured_connections(
    redis_server: RedisServer, prefix: str, raw: aioredis.Redis
) -> None:
    bounded = make(redis_server.url, prefix, REDIS_MAX_CONNECTIONS="3")
    await bounded.open()
    try:
        await put(bounded, "shared.txt", b"x" * 1000)
        before = int((await raw.info("clients"))["connected_clients"])
        reads = await asyncio.gather(*(get(bounded, "shared.txt") for _ in range(40)))
        after = int((await raw.info("clients"))["connected_clients"])
    finally:
        await bounded.close()
    assert reads == [b"x" * 1000] * 40, "every waiting read got its turn"
    assert after - before <= 3, f"{after - before} new connections for a limit of 3"


# -- what other Redis clients see ------------------------------------------------


async def test_values_are_plain_strings_under_the_prefixed_key_in_the_chosen_db(
    redis_server: RedisServer, prefix: str
) -> None:
    url = redis_server.url.rsplit("/", 1)[0] + "/3"
    connector = make(url, prefix)
    db3 = aioredis.Redis.from_url(url)
    db0 = aioredis.Redis.from_url(redis_server.url)
    try:
        await put(connector, "dir/value.json", b'{"x": 1}', content_type="application/json")
        assert await db3.get(f"{prefix}dir/value.json") == b'{"x": 1}'
        assert await db0.exists(f"{prefix}dir/value.json") == 0
        meta = await db3.hgetall(f"{prefix}dir/value.json".encode() + lua.META_SUFFIX)
        assert meta[b"type"] == b"application/json"
        assert int(meta[b"size"]) == 8
    finally:
        await connector.close()
        await db3.aclose()
        await db0.aclose()


async def _commands_during(
    redis_server: RedisServer, raw: aioredis.Redis, work: Callable[[], Awaitable[None]]
) -> list[str]:
    """Every command Redis ran while ``work`` ran (from MONITOR)."""
    monitor = aioredis.Redis.from_url(redis_server.url)
    try:
        async with monitor.monitor() as feed:
            await work()
            await raw.echo("end-of-work")
            commands: list[str] = []
            while "end-of-work" not in (command := (await feed.next_command())["command"]):
                commands.append(command)
    finally:
        await monitor.aclose()
    return commands


def _scans(commands: list[str]) -> list[str]:
    return [c for c in commands if c.split(" ", 1)[0].upper() in ("SCAN", "KEYS")]


async def test_listings_stats_and_directory_checks_never_scan(
    connector: RedisBufferedCas, redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    await put(connector, "dir/a", b"x")  # the first create finds and completes the index

    async def work() -> None:
        await put(connector, "dir/b", b"x")
        await put(connector, "dir/sub/c", b"x")
        assert [m.key for m in (await connector.list("dir/")).entries] == ["dir/a", "dir/b"]
        assert (await connector.list("dir/")).prefixes == ["dir/sub/"]
        with pytest.raises(IsADirectory):
            await put(connector, "dir", b"x")
        with pytest.raises(Missing) as missing:
            await connector.stat("dir")
        assert isinstance(missing.value.conflict, IsADirectory)
        assert await connector.probe("dir/sub") is Kind.DIRECTORY
        assert await connector.probe("nothing") is Kind.MISSING
        await connector.rename("dir/b", "dir/sub/b")
        await connector.delete("dir/a")

    commands = await _commands_during(redis_server, raw, work)
    assert _scans(commands) == []
    assert any(c.startswith("ZRANGEBYLEX") for c in commands), "MONITOR shows script commands"
    assert [m.key for m in (await connector.list("", delimiter=None)).entries] == [
        "dir/sub/b",
        "dir/sub/c",
    ]


async def _legacy_object(raw: aioredis.Redis, data: bytes, value: bytes) -> None:
    """An object as a connector without the index stored it: value and metadata hash only."""
    await raw.set(data, value)
    meta = {"etag": "legacy", "size": len(value), "mtime": "1700000000.000000"}
    await raw.hset(data + lua.META_SUFFIX, mapping=meta)  # type: ignore[arg-type]


async def test_objects_stored_before_the_index_are_indexed_once_on_first_use(
    redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    # Glob characters in the prefix: the one SCAN must match only this mount's keys.
    prefix = f"we*rd[{uuid.uuid4().hex[:6]}]?/"
    for name in ["a.txt", "dir/b.txt", "dir/deep/c.txt"]:
        await _legacy_object(raw, prefix.encode() + name.encode(), name.encode())
    sibling = prefix.replace("*", "X").replace("?", "Y").encode()
    await _legacy_object(raw, sibling + b"foreign.txt", b"foreign")
    await raw.set(prefix.encode() + b"not-an-object", b"no metadata hash")
    connector = make(redis_server.url, prefix)
    try:

        async def first_use() -> None:
            listing = await connector.list("", delimiter=None)
            assert [m.key for m in listing.entries] == ["a.txt", "dir/b.txt", "dir/deep/c.txt"]
            assert listing.entries[0].etag == "legacy"

        first = await _commands_during(redis_server, raw, first_use)
        scans = _scans(first)
        assert scans, "the first listing indexes the stored objects"
        assert all(" MATCH " in c for c in scans), "a SCAN without MATCH sees other mounts"

        async def later() -> None:
            with pytest.raises(IsADirectory):
                await put(connector, "dir", b"over a directory of old objects")
            with pytest.raises(NotADirectory):
                await put(connector, "a.txt/below", b"below an old object")
            assert (await connector.list("dir/")).prefixes == ["dir/deep/"]
            assert await get(connector, "dir/deep/c.txt") == b"dir/deep/c.txt"

        assert _scans(await _commands_during(redis_server, raw, later)) == []
        # Another connector process finds the index complete.
        other = make(redis_server.url, prefix)
        try:
            assert [m.key for m in (await other.list("dir/")).entries] == ["dir/b.txt"]
        finally:
            await other.close()
    finally:
        await connector.close()


async def test_without_the_index_scan_a_new_mount_starts_empty_and_never_scans(
    redis_server: RedisServer, raw: aioredis.Redis, prefix: str
) -> None:
    await _legacy_object(raw, prefix.encode() + b"old/from-before.txt", b"old")
    connector = make(redis_server.url, prefix, REDIS_INDEX_SCAN="false")
    try:

        async def first_use() -> None:
            await put(connector, "new.txt", b"new")
            page = await connector.list("")
            assert ([m.key for m in page.entries], page.prefixes) == (["new.txt"], [])

        assert _scans(await _commands_during(redis_server, raw, first_use)) == []
        # What was stored before stays readable; only the index does not know it.
        assert await get(connector, "old/from-before.txt") == b"old"
    finally:
        await connector.close()


async def test_concurrent_first_users_build_the_index_once_and_all_see_it(
    redis_server: RedisServer, raw: aioredis.Redis, prefix: str
) -> None:
    async with raw.pipeline(transaction=False) as pipe:
        for i in range(3000):
            data = f"{prefix}old/{i:05d}".encode()
            pipe.set(data, b"v")
            pipe.hset(data + lua.META_SUFFIX, mapping={"etag": "e", "size": 1, "mtime": "1.0"})
        await pipe.execute()
    connectors = [make(redis_server.url, prefix) for _ in range(4)]
    try:
        listings = await asyncio.gather(
            *(c.list("old/", limit=1000) for c in connectors),
            *(put(c, f"new/{n}", b"created while indexing") for n, c in enumerate(connectors)),
        )
        for listing in listings[:4]:
            assert isinstance(listing, ListPage)
            assert len(listing.entries) == 1000
            assert listing.next_token == "old/00999"
        assert await raw.zcard(prefix.encode() + lua.INDEX_SUFFIX) == 3000 + 4 + 1
    finally:
        for c in connectors:
            await c.close()


async def test_names_of_objects_that_expired_or_were_deleted_by_hand_are_pruned(
    connector: RedisBufferedCas, raw: aioredis.Redis, prefix: str
) -> None:
    # More vanished names below one directory than one script call prunes.
    count = lua.PRUNE_BUDGET + 500
    await put(connector, "gone/first", b"x")
    async with raw.pipeline(transaction=False) as pipe:
        for i in range(count):
            data = f"{prefix}gone/{i:05d}".encode()
            pipe.set(data, b"v")
            pipe.hset(data + lua.META_SUFFIX, mapping={"etag": "e", "size": 1, "mtime": "1.0"})
        pipe.zadd(
            prefix.encode() + lua.INDEX_SUFFIX, {f"gone/{i:05d}".encode(): 0 for i in range(count)}
        )
        await pipe.execute()
    await put(connector, "gone/short-lived", b"x")
    await connector.set_xattr("gone/short-lived", "ttl", "1")
    await connector.delete("gone/first")
    async with raw.pipeline(transaction=False) as pipe:
        for i in range(count):
            data = f"{prefix}gone/{i:05d}".encode()
            pipe.delete(data, data + lua.META_SUFFIX)
        await pipe.execute()

    async def expired() -> bool:
        return not await raw.exists(f"{prefix}gone/short-lived".encode() + lua.META_SUFFIX)

    await _eventually(expired, "the key with a TTL to expire")
    assert await connector.probe("gone") is Kind.MISSING
    assert (await connector.list("")).prefixes == []
    # A file where only vanished names were: allowed, as on a disk.
    await put(connector, "gone", b"a file now")
    assert await raw.zrange(prefix.encode() + lua.INDEX_SUFFIX, 0, -1) == [lua.COMPLETE, b"gone"]


async def test_asya_state_reindex_drops_names_and_adds_objects_the_index_missed(
    connector: RedisBufferedCas, raw: aioredis.Redis, prefix: str, redis_server: RedisServer
) -> None:
    await put(connector, "kept.txt", b"x")
    # Written by a connector without the index (during a rolling upgrade, say).
    await _legacy_object(raw, prefix.encode() + b"unseen/by-old-version.txt", b"old")
    await raw.zadd(prefix.encode() + lua.INDEX_SUFFIX, {b"phantom": 0})
    assert (await connector.list("")).prefixes == []
    command = [sys.executable, "-m", "asya_state_cli", "reindex"]
    env = {**os.environ, "REDIS_URL": redis_server.url, "STATE_PREFIX": prefix}
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"indexed 2 objects under {prefix!r}")
    page = await connector.list("")
    assert ([m.key for m in page.entries], page.prefixes) == (["kept.txt"], ["unseen/"])
    without_url = {k: v for k, v in env.items() if k != "REDIS_URL"}
    refused = await asyncio.to_thread(
        subprocess.run, command, env=without_url, capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2
    assert "REDIS_URL" in refused.stderr


async def test_failed_staged_upload_keeps_the_old_value_and_leaves_no_staging_key(
    connector: RedisBufferedCas, raw: aioredis.Redis, prefix: str
) -> None:
    await put(connector, "keep.bin", b"old")
    with pytest.raises(ConnectionResetError):
        await connector.write("keep.bin", failing_body(b"z" * (3 * MiB), 2 * MiB))
    with pytest.raises(TooLarge):
        await connector.write("keep.bin", pattern_body(8 * MiB + 1))
    assert await get(connector, "keep.bin") == b"old"
    leftovers = [
        k async for k in raw.scan_iter(match=f"{prefix}*".encode() + lua.STAGED_INFIX + b"*")
    ]
    assert leftovers == []


async def test_a_declared_size_over_the_limit_is_refused_before_reading_the_body(
    connector: RedisBufferedCas,
) -> None:
    started = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal started
        started = True
        yield b"x"

    with pytest.raises(TooLarge):
        await connector.write("huge.bin", body(), size=8 * MiB + 1)
    assert not started


async def test_append_past_the_limit_is_refused_and_keeps_the_value(
    connector: RedisBufferedCas,
) -> None:
    await connector.write("log", pattern_body(8 * MiB - 10))
    before = (await connector.stat("log")).etag
    with pytest.raises(TooLarge):
        await connector.append("log", chunks_of(b"y" * 11))
    assert (await connector.stat("log")).etag == before
    await connector.append("log", chunks_of(b"y" * 10))
    assert (await connector.stat("log")).size == 8 * MiB


async def test_a_256_mib_value_streams_through_the_connector_process_in_bounded_memory(
    redis_server: RedisServer, socket_dir: Path, prefix: str
) -> None:
    size = 256 * MiB
    env = {
        "REDIS_URL": redis_server.url,
        "STATE_PREFIX": prefix,
        "REDIS_MAX_VALUE_BYTES": str(size),
    }
    with ConnectorProcess("redis-buffered-cas", socket_dir / "redis-big.sock", env) as process:
        client = HttpConnector(process.socket_path)
        await client.open()
        try:
            with PeakRss(process.pid) as rss:
                await client.write("weights.bin", pattern_body(size), size=None)
                digest = await digest_of(client, "weights.bin")
            await client.delete("weights.bin")
        finally:
            await client.close()
    assert digest == (pattern_digest(size), size)
    assert rss.peak < 100 * MiB, f"connector peaked at {rss.peak / MiB:.0f} MiB for 256 MiB"


# -- reads ----------------------------------------------------------------------


async def test_ranges_across_chunk_boundaries_of_a_large_value(connector: RedisBufferedCas) -> None:
    data = hashlib.sha256(b"seed").digest() * (3 * MiB // 32)
    await put(connector, "ranged.bin", data)
    for spec, expected in [
        (RangeSpec(100, 600_000), data[100:600_001]),
        (RangeSpec(None, 700_000), data[-700_000:]),
        (RangeSpec(3 * MiB - 5, None), data[-5:]),
        (None, data),
    ]:
        assert await get(connector, "ranged.bin", spec) == expected, spec


async def test_a_read_overlapping_an_overwrite_fails_rather_than_mixing_versions(
    connector: RedisBufferedCas,
) -> None:
    await put(connector, "moving.bin", b"A" * (2 * MiB))
    stream = await connector.read("moving.bin")
    received = [await anext(stream.chunks)]
    await put(connector, "moving.bin", b"B" * (2 * MiB))

    async def drain() -> None:
        async for chunk in stream.chunks:
            received.append(chunk)

    with pytest.raises(Conflict):
        await drain()
    assert b"B" not in b"".join(received)


# -- TTL --------------------------------------------------------------------------


async def test_expiry_removes_value_and_metadata_together(
    connector: RedisBufferedCas, raw: aioredis.Redis, prefix: str
) -> None:
    await put(connector, "short-lived", b"x")
    await connector.set_xattr("short-lived", "ttl", "1")
    data = f"{prefix}short-lived".encode()
    # Read both expiries at one instant (MULTI/EXEC), so they compare exactly.
    async with raw.pipeline(transaction=True) as pipe:
        value_ttl, meta_ttl = await pipe.pttl(data).pttl(data + lua.META_SUFFIX).execute()
    assert 0 < value_ttl <= 1000
    assert meta_ttl == value_ttl

    async def gone() -> bool:
        return await raw.exists(data, data + lua.META_SUFFIX) == 0

    await _eventually(gone, "the expired key to disappear")
    with pytest.raises(NotFound):
        await connector.stat("short-lived")
    assert (await connector.list("")).entries == []


async def test_append_and_rename_keep_the_expiry_and_delete_forgets_it(
    connector: RedisBufferedCas,
) -> None:
    await put(connector, "a.log", b"one\n", content_type="text/plain")
    await connector.set_xattr("a.log", "ttl", "3600")
    await connector.append("a.log", chunks_of(b"two\n"))
    assert 3500 <= int(await connector.get_xattr("a.log", "ttl")) <= 3600
    renamed = await connector.rename("a.log", "b.log")
    assert renamed.content_type == "text/plain"
    assert 3500 <= int(await connector.get_xattr("b.log", "ttl")) <= 3600
    assert await get(connector, "b.log") == b"one\ntwo\n"
    await connector.delete("b.log")
    await put(connector, "b.log", b"fresh")
    assert await connector.get_xattr("b.log", "ttl") == "-1"


async def test_ttl_and_content_type_on_a_missing_key_are_not_found(
    connector: RedisBufferedCas,
) -> None:
    for name, value in [("ttl", "60"), ("content_type", "text/plain")]:
        with pytest.raises(NotFound):
            await connector.set_xattr("absent", name, value)


# -- access control, TLS, configuration -------------------------------------------


async def test_a_foreign_value_at_a_metadata_key_is_an_error_naming_the_key(
    connector: RedisBufferedCas, raw: aioredis.Redis, prefix: str
) -> None:
    # Another program wrote a plain string where the connector keeps an object's metadata
    # hash: the read block's HMGET fails inside EXEC, and nothing is taken for a value.
    await raw.set(prefix.encode() + b"clash" + lua.META_SUFFIX, b"not a hash")
    for call in (connector.stat("clash"), connector.read("clash")):
        with pytest.raises(ConnectorError, match="WRONGTYPE") as caught:
            await call
        assert "'clash'" in str(caught.value)
        assert not isinstance(caught.value, NotFound)
    await put(connector, "fine", b"still served")
    assert await get(connector, "fine") == b"still served"


@pytest.fixture(scope="module")
def password_server() -> Iterator[RedisServer]:
    with RedisServer(password="admin-secret") as server:
        yield server


async def test_passwords_and_acl_users(password_server: RedisServer) -> None:
    port = password_server.port
    admin = aioredis.Redis.from_url(password_server.url)
    await admin.execute_command(
        "ACL",
        "SETUSER",
        "reader",
        "on",
        ">reader-secret",
        "~*",
        "+@read",
        "+@connection",
        "+@transaction",  # reads are MULTI/EXEC blocks
        "+@scripting",  # so that the refusal of a write comes from inside the script
    )
    # Exactly the categories the README names for a writer.
    await admin.execute_command(
        "ACL",
        "SETUSER",
        "writer",
        "on",
        ">writer-secret",
        "~*",
        *("+@read", "+@transaction", "+@connection", "+@write", "+@scripting", "+time"),
    )
    # Without +@transaction every read is refused at MULTI, and the error says so.
    await admin.execute_command(
        "ACL", "SETUSER", "no-transactions", "on", ">s", "~*", "+@read", "+@connection"
    )
    await admin.aclose()
    no_transactions = make(f"redis://no-transactions:s@127.0.0.1:{port}/0", "acl-writer/")
    try:
        with pytest.raises(PermissionDenied, match="multi"):
            await no_transactions.stat("anything")
    finally:
        await no_transactions.close()
    writer = make(f"redis://writer:writer-secret@127.0.0.1:{port}/0", "acl-writer/")
    try:
        await put(writer, "draft", b"v1")
        await writer.set_xattr("draft", "ttl", "600")
        await writer.rename("draft", "final")
        assert await get(writer, "final") == b"v1"
        assert [entry.key for entry in (await writer.list("")).entries] == ["final"]
        await writer.delete("final")
    finally:
        await writer.close()
    owner = make(password_server.url, "acl/")
    reader = make(f"redis://reader:reader-secret@127.0.0.1:{port}/0", "acl/")
    intruder = make(f"redis://reader:wrong@127.0.0.1:{port}/0", "acl/")
    try:
        await put(owner, "doc", b"owned")
        assert await get(reader, "doc") == b"owned"
        with pytest.raises(PermissionDenied):
            await put(reader, "doc", b"vandalised")
        with pytest.raises(PermissionDenied):
            await get(intruder, "doc")
        with pytest.raises(PermissionDenied):
            await intruder.check_health()
        assert await get(owner, "doc") == b"owned"
    finally:
        for client in (owner, reader, intruder):
            await client.close()


# What the README names for a user that only reads: no write command, and
# scripts only through EVALSHA_RO (which refuses any write inside).
READ_ONLY_ACL = ("+@read", "+@connection", "+@transaction", "+evalsha_ro", "+script|load")


@pytest.mark.parametrize(
    "grants",
    [READ_ONLY_ACL, ("+@read", "+@connection", "+@transaction", "+@scripting")],
    ids=["evalsha_ro", "scripting-without-write"],
)
async def test_a_read_only_user_lists_and_stats_and_leaves_pruning_to_writers(
    password_server: RedisServer, grants: tuple[str, ...]
) -> None:
    port = password_server.port
    user = f"ro{uuid.uuid4().hex[:8]}"
    mount = f"{user}/"
    admin = aioredis.Redis.from_url(password_server.url)
    await admin.execute_command("ACL", "SETUSER", user, "on", ">ro-secret", "~*", *grants)
    owner = make(password_server.url, mount)
    reader = make(f"redis://{user}:ro-secret@127.0.0.1:{port}/0", mount)
    index = mount.encode() + lua.INDEX_SUFFIX
    try:
        for name in ("dir/a", "dir/b", "dir/gone", "emptied/gone"):
            await put(owner, name, name.encode())
        # Objects removed behind the index's back (as an expiry does): their names stay.
        for name in ("dir/gone", "emptied/gone"):
            await admin.delete(f"{mount}{name}", f"{mount}{name}".encode() + lua.META_SUFFIX)

        page = await reader.list("dir/")
        assert [entry.key for entry in page.entries] == ["dir/a", "dir/b"]
        assert await get(reader, "dir/a") == b"dir/a"
        assert await reader.probe("dir") is Kind.DIRECTORY
        assert await reader.probe("emptied") is Kind.MISSING  # only a dead name below it
        with pytest.raises(Missing) as nothing:
            await reader.looked_up("emptied", reader.stat("emptied"))
        assert nothing.value.conflict is None
        with pytest.raises(Missing) as directory:
            await reader.looked_up("dir", reader.stat("dir"))
        assert isinstance(directory.value.conflict, IsADirectory)
        with pytest.raises(PermissionDenied):
            await put(reader, "dir/c", b"refused")
        # The reader removed nothing; the next writer's listing does.
        assert await admin.zscore(index, b"dir/gone") is not None
        assert await admin.zscore(index, b"emptied/gone") is not None
        assert [entry.key for entry in (await owner.list("", delimiter=None)).entries] == [
            "dir/a",
            "dir/b",
        ]
        assert await admin.zscore(index, b"dir/gone") is None
        assert await admin.zscore(index, b"emptied/gone") is None

        # A mount no writer has indexed yet: the reader says who can build it.
        fresh = make(f"redis://{user}:ro-secret@127.0.0.1:{port}/0", f"{user}-fresh/")
        try:
            with pytest.raises(PermissionDenied, match="reindex"):
                await fresh.list("")
        finally:
            await fresh.close()
    finally:
        await admin.execute_command("ACL", "DELUSER", user)
        await admin.aclose()
        for client in (owner, reader):
            await client.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("redis-tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_rediss_url_with_a_ca_file(tls_files: tuple[Path, Path]) -> None:
    with RedisServer(tls=tls_files) as server:
        connector = make(f"{server.url}?ssl_ca_certs={tls_files[0]}", "tls/")
        try:
            await connector.check_health()
            await put(connector, "secure", b"over TLS")
            assert await get(connector, "secure") == b"over TLS"
        finally:
            await connector.close()


async def test_unix_socket_url_with_a_db_number() -> None:
    # Socket paths are limited to about 100 bytes, so not under pytest's tmp_path.
    directory = Path(tempfile.mkdtemp(prefix="asya-redis-"))
    try:
        with RedisServer(unix_socket=directory / "redis.sock") as server:
            connector = make(f"unix://{directory}/redis.sock?db=3", "sock/")
            admin = aioredis.Redis(host="127.0.0.1", port=server.port, db=3)
            try:
                await put(connector, "local", b"over a Unix socket")
                assert await get(connector, "local") == b"over a Unix socket"
                assert await admin.get("sock/local") == b"over a Unix socket"
            finally:
                await connector.close()
                await admin.aclose()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "REDIS_URL"),
        ({"REDIS_URL": "http://redis:6379"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://redis:6379/notadb"}, "REDIS_URL"),
        (
            {"REDIS_URL": "redis://r", "REDIS_MAX_VALUE_BYTES": str(600 * MiB)},
            "REDIS_MAX_VALUE_BYTES",
        ),
        ({"REDIS_URL": "redis://r", "REDIS_TIMEOUT_SECONDS": "soon"}, "REDIS_TIMEOUT_SECONDS"),
    ],
)
def test_configuration_errors_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        RedisBufferedCas.from_settings(Settings(env))


# -- outage and recovery ---------------------------------------------------------


async def _works(connector: Connector, key: str) -> bool:
    try:
        await put(connector, key, b"back")
        return await get(connector, key) == b"back"
    except ConnectorError:
        return False


async def test_redis_down_is_503_and_both_paths_recover_after_a_restart(
    socket_dir: Path,
) -> None:
    with RedisServer() as server:
        env = {"REDIS_URL": server.url, "STATE_PREFIX": "outage/"}
        direct = RedisBufferedCas.from_settings(Settings(env))
        process = ConnectorProcess(
            "redis-buffered-cas", socket_dir / "redis-outage.sock", env
        ).start()
        served = HttpConnector(process.socket_path)
        await served.open()
        try:
            for connector in (direct, served):
                await put(connector, "k", b"before")
            server.stop()
            for connector in (direct, served):
                with pytest.raises(BackendUnavailable):
                    await get(connector, "k")
                with pytest.raises(BackendUnavailable):
                    await put(connector, "k", b"during")
                with pytest.raises(BackendUnavailable):
                    await connector.check_health()
            server.start()
            for connector in (direct, served):
                await _eventually(
                    functools.partial(_works, connector, "k"), "recovery after a restart"
                )
                await connector.check_health()
        finally:
            await served.close()
            await direct.close()
            process.stop()


async def test_a_stalled_server_times_out_and_late_replies_never_answer_later_commands() -> None:
    with RedisServer() as server:
        connector = make(server.url, "stalled/", REDIS_TIMEOUT_SECONDS="0.5")
        await connector.open()
        try:
            await put(connector, "k", b"before")
            assert server.process is not None
            server.process.send_signal(signal.SIGSTOP)  # alive, accepting, answering nothing
            try:
                started = time.monotonic()
                with pytest.raises(BackendTimeout, match="'k'"):
                    await get(connector, "k")
                with pytest.raises(BackendTimeout, match="'k'"):
                    await put(connector, "k", b"during")
                # A bound, not a speed check: without the timeout this waits forever.
                assert time.monotonic() - started < 10, "the command timeout did not apply"
            finally:
                server.process.send_signal(signal.SIGCONT)
            # The stalled server now sends the replies it owed; a connection
            # kept after a timeout would hand them to these commands.
            await put(connector, "other", b"other value")
            assert await get(connector, "other") == b"other value"
            assert await get(connector, "k") in (b"before", b"during")
            meta = await connector.stat("other")
            assert meta.size == len(b"other value")
        finally:
            await connector.close()


# -- abandoned uploads -------------------------------------------------------------


async def test_a_killed_connectors_staged_upload_is_discarded_when_it_starts_again(
    redis_server: RedisServer, raw: aioredis.Redis, socket_dir: Path, prefix: str
) -> None:
    env = {"REDIS_URL": redis_server.url, "STATE_PREFIX": prefix}
    staged = f"{prefix}*".encode() + lua.STAGED_INFIX + b"*"

    async def leftovers() -> list[bytes]:
        return [k async for k in raw.scan_iter(match=staged)]

    with ConnectorProcess("redis-buffered-cas", socket_dir / "redis-kill.sock", env) as process:
        # 3 MiB declared, 2 MiB sent: the connector stages what it has and waits for the rest.
        _reader, writer = await asyncio.open_unix_connection(process.socket_path)
        writer.write(
            f"PUT /v1/objects/big.bin HTTP/1.1\r\nHost: x\r\nContent-Length: {3 * MiB}\r\n\r\n".encode()
        )
        writer.write(b"z" * (2 * MiB))
        await writer.drain()

        async def staging() -> bool:
            return bool(await leftovers())

        await _eventually(staging, "the upload is staged")
        process.kill()
        writer.close()
        assert len(await leftovers()) == 1  # the killed connector could not clean up
        process.restart()

        async def swept() -> bool:
            return not await leftovers()

        await _eventually(swept, "the restarted connector discards the staged value")
        assert await raw.exists(f"{prefix}big.bin".encode()) == 0
