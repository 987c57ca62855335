"""``redis-buffered-cas`` on Redis Cluster: one slot per mount, mounts over every shard, the cluster followed.

Against the session's loopback cluster (3 primaries, 3 replicas, see
tests/fixtures/redis.py). The failover under load is in
tests/runner/test_redis_failover.py; the conformance suite runs the whole
behaviour against the cluster too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.crc import key_slot

from asya_state_cli.main import main
from asya_state_cli.servers.redis import RedisCluster, RedisClusterNode, RedisServer
from asya_state_connectors.backends.redis import scripts as lua
from asya_state_connectors.backends.redis.backend import RedisBufferedCas, staging_owner
from asya_state_connectors.backends.redis.cluster import cluster_root, hash_tag
from asya_state_connectors.errors import BackendTimeout, ConfigError
from asya_state_connectors.settings import Settings
from tests.conformance.helpers import get, put


def make(cluster: RedisCluster, prefix: str, **env: str) -> RedisBufferedCas:
    return RedisBufferedCas.from_settings(
        Settings({"REDIS_URL": cluster.url, "STATE_PREFIX": prefix, **env})
    )


@pytest.fixture
def prefix() -> str:
    return f"unit-{uuid.uuid4().hex[:10]}/"


@pytest.fixture
async def connector(redis_cluster: RedisCluster, prefix: str) -> AsyncIterator[RedisBufferedCas]:
    opened = make(redis_cluster, prefix)
    await opened.open()
    yield opened
    await opened.close()


def _node(cluster: RedisCluster, port: int) -> RedisClusterNode:
    return next(node for node in cluster.nodes if node.port == port)


@pytest.mark.parametrize("prefix", ["orders/", "{orders}/", "", "a}b/", "}x/", "a{b/"])
def test_every_key_of_a_mount_hashes_to_one_slot(prefix: str) -> None:
    root = cluster_root(prefix).encode()
    assert hash_tag(root) is not None
    keys = [root + name for name in (b"x", b"dir/{y}.txt", b"z}{w", b"a" + lua.INDEX_SUFFIX)]
    assert len({key_slot(key) for key in keys}) == 1
    if hash_tag(prefix.encode()) is not None:
        assert root == prefix.encode()  # a prefix with its own hash tag is used as it is


async def test_values_live_under_the_tagged_root_on_the_primary_of_its_slot(
    redis_cluster: RedisCluster, connector: RedisBufferedCas, prefix: str
) -> None:
    await put(connector, "a/b.txt", b"hello")
    assert connector.cluster  # REDIS_CLUSTER=auto found out from the node
    key = b"{" + prefix.encode() + b"}a/b.txt"
    assert redis_cluster.primary_of(key).command_reply("GET", key) == b"hello"


async def test_mounts_spread_over_every_primary(redis_cluster: RedisCluster) -> None:
    holders = set()
    for number in range(24):
        connector = make(redis_cluster, f"actor-{number}/")
        try:
            await put(connector, "state.json", b"{}")
        finally:
            await connector.close()
        holders.add(redis_cluster.primary_of(f"{{actor-{number}/}}state.json".encode()).port)
    assert len(holders) == 3


async def test_the_start_up_sweep_finds_a_previous_lifes_staged_value_on_the_cluster(
    redis_cluster: RedisCluster, prefix: str
) -> None:
    socket = f"/tmp/asya-sweep-{prefix.strip('/')}.sock"
    owner = staging_owner(socket).encode()
    staged = b"{" + prefix.encode() + b"}big.bin" + lua.STAGED_INFIX + owner + b"\x00dead.0011"
    node = redis_cluster.primary_of(staged)
    node.command_reply("SET", staged, b"z" * 1024, "EX", 3600)
    connector = make(redis_cluster, prefix, CONNECTOR_SOCKET=socket)
    try:
        assert await connector.discard_abandoned_uploads() == 1
    finally:
        await connector.close()
    assert node.command_reply("EXISTS", staged) == 0


def _slot_owner(cluster: RedisCluster, slot: int) -> tuple[RedisClusterNode, bytes]:
    for start, end, owner, *_ in cluster.nodes[0].command_reply("CLUSTER", "SLOTS"):
        if int(start) <= slot <= int(end):
            return _node(cluster, int(owner[1])), owner[2]
    raise AssertionError(f"nobody serves slot {slot}")


async def test_a_mount_whose_slot_moves_to_another_primary_is_followed(
    redis_cluster: RedisCluster, connector: RedisBufferedCas, prefix: str
) -> None:
    """ASK while the slot migrates, MOVED once it has moved.

    Mid-migration a read goes to the target (ASK); a write, whose script names
    keys that exist nowhere (the parents' metadata), is answered TRYAGAIN by
    Redis until the slot has moved, and completes then.
    """
    root = cluster_root(prefix).encode()
    slot = key_slot(root)
    for number in range(5):
        await put(connector, f"d/{number}.txt", f"v{number}".encode())
    source, source_id = _slot_owner(redis_cluster, slot)
    target_node = next(
        node
        for node in redis_cluster.nodes
        if node is not source and node.info("replication").get("role") == "master"
    )
    target_id = target_node.command_reply("CLUSTER", "MYID")
    target_node.command_reply("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    source.command_reply("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    keys: list[Any] = source.command_reply("CLUSTER", "GETKEYSINSLOT", slot, 1000)
    source.command_reply("MIGRATE", "127.0.0.1", target_node.port, "", 0, 5000, "KEYS", *keys)
    # Mid-migration: the source answers ASK for keys it no longer has.
    assert await get(connector, "d/1.txt") == b"v1"
    pending = asyncio.create_task(put(connector, "d/1.txt", b"during"))
    await asyncio.sleep(0.2)
    assert not pending.done()
    for node in redis_cluster.nodes:
        if node.process is not None and node.info("replication").get("role") == "master":
            node.command_reply("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    # Moved: the source answers MOVED and the connector reads the map again.
    await pending
    assert await get(connector, "d/1.txt") == b"during"
    await put(connector, "d/5.txt", b"after")
    assert sorted(e.key for e in (await connector.list("d/")).entries) == [
        f"d/{n}.txt" for n in range(6)
    ]
    assert target_node.command_reply("GET", root + b"d/5.txt") == b"after"
    redis_cluster.wait_healthy()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REDIS_CLUSTER": "maybe"}, "REDIS_CLUSTER"),
        ({"REDIS_CLUSTER": "true", "REDIS_URL": "unix:///tmp/r.sock"}, "REDIS_CLUSTER"),
        ({"REDIS_WAIT_REPLICAS": "-1"}, "REDIS_WAIT_REPLICAS"),
        (
            {"REDIS_WAIT_REPLICAS": "1", "REDIS_WAIT_TIMEOUT_MS": "20000"},
            "REDIS_WAIT_TIMEOUT_MS",
        ),
    ],
)
def test_cluster_and_wait_settings_are_checked(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        RedisBufferedCas.from_settings(Settings({"REDIS_URL": "redis://r", **env}))


async def test_asya_state_redis_copy_moves_a_mount_from_standalone_redis_to_the_cluster(
    redis_server: RedisServer,
    redis_cluster: RedisCluster,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = RedisBufferedCas.from_settings(
        Settings({"REDIS_URL": redis_server.url, "STATE_PREFIX": prefix})
    )
    try:
        await put(source, "a/one.txt", b"one")
        await put(source, "a/b/two.txt", b"two")
        await put(source, "short.txt", b"lives an hour")
        await source.set_xattr("short.txt", "ttl", "3600")
    finally:
        await source.close()
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("STATE_PREFIX", prefix)
    # The command runs its own event loop, as from a shell.
    assert await asyncio.to_thread(main, ["redis-copy", "--to", redis_cluster.url]) == 0
    assert "copied 7 keys" in capsys.readouterr().out  # 3 values, 3 metadata hashes, the index
    target = make(redis_cluster, prefix)
    try:
        page = await target.list("", delimiter=None)
        assert sorted(e.key for e in page.entries) == ["a/b/two.txt", "a/one.txt", "short.txt"]
        assert await get(target, "a/b/two.txt") == b"two"
        assert 3500 < int((await target.get_xattrs("short.txt"))["ttl"]) <= 3600
        await put(target, "a/one.txt", b"changed on the cluster")
    finally:
        await target.close()


async def test_a_write_no_replica_acknowledged_is_reported_failed_yet_applied(
    redis_server: RedisServer, prefix: str
) -> None:
    """REDIS_WAIT_REPLICAS on a server without replicas: every write times out waiting."""
    connector = RedisBufferedCas.from_settings(
        Settings(
            {
                "REDIS_URL": redis_server.url,
                "STATE_PREFIX": prefix,
                "REDIS_WAIT_REPLICAS": "1",
                "REDIS_WAIT_TIMEOUT_MS": "20",
            }
        )
    )
    try:
        with pytest.raises(BackendTimeout, match="0 of 1 replicas") as caught:
            await put(connector, "x.txt", b"applied")
        assert caught.value.key == "x.txt"
        # Applied on the primary all the same (reads do not wait); on the way the new
        # mount's index was built, its script answers changing nothing to wait for.
        assert await get(connector, "x.txt") == b"applied"
    finally:
        await connector.close()


async def test_with_wait_writes_to_the_cluster_are_acknowledged_by_a_replica(
    redis_cluster: RedisCluster, prefix: str
) -> None:
    connector = make(redis_cluster, prefix, REDIS_WAIT_REPLICAS="1")
    try:
        for number in range(5):
            await put(connector, "counter", str(number).encode())
        await connector.rename("counter", "renamed")
        await connector.delete("renamed")
    finally:
        await connector.close()


async def test_with_wait_and_a_replica_down_writes_fail_fast_and_reads_go_on(
    redis_cluster: RedisCluster, prefix: str
) -> None:
    """The cost of REDIS_WAIT_REPLICAS: a shard without its replica takes no writes."""
    connector = make(redis_cluster, prefix, REDIS_WAIT_REPLICAS="1", REDIS_WAIT_TIMEOUT_MS="50")
    root = cluster_root(prefix).encode()
    try:
        await put(connector, "kept.txt", b"before")
        replica = next(
            node
            for node in redis_cluster.nodes
            if node.info("replication").get("master_port")
            == str(redis_cluster.primary_of(root).port)
        )
        replica.stop()
        try:
            with pytest.raises(BackendTimeout, match="0 of 1 replicas"):
                await put(connector, "kept.txt", b"unreplicated")
            # Applied on the primary all the same; reads do not wait.
            assert await get(connector, "kept.txt") == b"unreplicated"
        finally:
            replica.start()
            redis_cluster.wait_healthy()
        await put(connector, "kept.txt", b"after")
    finally:
        await connector.close()
