"""Clustered NATS JetStream: a member SIGKILLed mid-run loses no acknowledged write and stops nothing.

Three nats-servers clustered on loopback (``NatsCluster``), a bucket with
three replicas (``NATS_KV_REPLICAS=3``) and connectors given all three URLs.

In the default run two writers race compare-and-swap increments of one
counter (one through a long-lived connector process, one a connector in the
test's event loop) while the member leading the bucket's stream is
SIGKILLed, which costs an election: no request may fail (each waits for the
new leader), the count must equal the increments acknowledged, and every
read after an acknowledged write must return that write (no stale answer
from a replica). The killed member is started again and must catch up: the
leader's last sequence, and the count read from its own replica. A write
whose acknowledgement is lost is sent again and stored once. While the
killed member is down (and listed first), a new connector creates a bucket
of three replicas on the other two.

Marked soak (``--soak``): the CAS counter of ``examples/cas-counter`` under the real
``asya-state run`` with two pods racing (each with its own connector
process), a member of each role killed mid-run: the stream leader, the
JetStream meta leader, a member leading nothing, and every role in turn. The
count must come out exact: every message reported applied once, the stored
count equal to the messages applied.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.js.client import JetStreamContext

from asya_state_cli.connector_process import ConnectorProcess
from asya_state_cli.servers.nats import NatsCluster, NatsServer
from asya_state_connectors.backends.nats_kv.backend import NatsKvBufferedCas
from asya_state_connectors.backends.nats_kv.key_encoding import encode_key
from asya_state_connectors.client import HttpConnector
from asya_state_connectors.errors import Conflict
from asya_state_connectors.interface import Connector, WriteCondition
from asya_state_connectors.settings import Settings
from tests.conformance.helpers import chunks_of, get
from tests.runner.helpers import LiveRun
from tests.runner.test_chaos import Rig, _assert_counted_exactly, _run_counter

BUCKET = "cluster-counter"
STREAM = f"KV_{BUCKET}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[NatsCluster]:
    with NatsCluster() as started:
        yield started


@pytest.fixture
def rig(cluster: NatsCluster, tmp_path: Path) -> Iterator[Rig]:
    env = {
        "NATS_URL": cluster.url,
        "NATS_KV_BUCKET": BUCKET,
        "NATS_KV_REPLICAS": "3",
        "STATE_PREFIX": f"chaos-{tmp_path.name}/",
    }
    yield Rig("nats-kv-buffered-cas", env, tmp_path / "state", None)
    # Whatever a test left down comes back, so the next one starts with three.
    for node in cluster.nodes:
        if node.process is None:
            node.start()
    cluster.wait_healthy()


def _victim(cluster: NatsCluster, role: str) -> NatsServer:
    stream_leader = cluster.stream_leader(STREAM)
    if role == "stream-leader":
        return stream_leader
    meta_leader = cluster.meta_leader()
    if role == "meta-leader":
        return meta_leader
    return next(n for n in cluster.nodes if n not in (stream_leader, meta_leader))


async def _count_on(node: NatsServer, key: str) -> int:
    """A stored count as ``node``'s own replica holds it (a direct get, answered locally)."""
    client = await nats.connect(servers=[node.url])
    try:
        subject = f"$KV.{BUCKET}." + encode_key(key)
        reply = await client.request(f"$JS.API.DIRECT.GET.{STREAM}.{subject}", b"", timeout=5)
    finally:
        await client.close()
    assert reply.headers is not None
    assert "Status" not in reply.headers, reply.headers
    value = json.loads(reply.data)
    return int(value["count"] if isinstance(value, dict) else value)


def _kill_then_count(rig: Rig, cluster: NatsCluster, roles: list[str], messages: int) -> None:
    killed: list[NatsServer] = []

    def fault(run: LiveRun) -> None:
        # The previous victim comes back first: one member down at a time.
        for node in killed:
            if node.process is None:
                node.start()
        if killed:
            cluster.wait_caught_up(STREAM)
        victim = _victim(cluster, roles[len(killed)])
        killed.append(victim)
        victim.kill()

    result = _run_counter(
        rig,
        [{"n": n} for n in range(messages)],
        faults=len(roles),
        fault=fault,
        replicas=2,
    )
    # Exact: faults=0 allows no increment applied twice.
    _assert_counted_exactly(rig, result, messages, set())
    stored = messages
    # The last victim, started again, catches up with what it missed.
    victim = killed[-1]
    victim.start()
    last = cluster.wait_caught_up(STREAM)
    assert cluster.stream_state(victim, STREAM)["last_seq"] == last
    key = rig.env["STATE_PREFIX"] + "counter.json"
    assert asyncio.run(_count_on(victim, key)) == stored


async def _increment(connector: Connector, key: str) -> tuple[int, str]:
    """One compare-and-swap increment, read again after every conflict; the count and revision written."""
    while True:
        meta = await connector.stat(key)
        count = int(await get(connector, key)) + 1
        body = str(count).encode()
        try:
            written = await connector.write(
                key, chunks_of(body), size=len(body), condition=WriteCondition(if_match=meta.etag)
            )
        except Conflict:
            continue
        return count, written.etag


async def _writer(connector: Connector, key: str, stop: asyncio.Event) -> list[int]:
    """Increments until told to stop; any error but a conflict fails the test."""
    counts = []
    while not stop.is_set():
        count, _ = await _increment(connector, key)
        counts.append(count)
    return counts


async def _create_with_one_down(cluster: NatsCluster, down: NatsServer) -> None:
    bucket = f"late{uuid.uuid4().hex[:8]}"
    others = [node.url for node in cluster.nodes if node is not down]
    env = {"NATS_URL": ",".join([down.url, *others]), "NATS_KV_BUCKET": bucket}
    connector = NatsKvBufferedCas.from_settings(Settings({**env, "NATS_KV_REPLICAS": "3"}))
    await connector.open()
    try:
        await connector.write("k", chunks_of(b"created"), size=7)
        assert await get(connector, "k") == b"created"
    finally:
        await connector.close()
    client = await nats.connect(servers=others)
    try:
        info = await client.jetstream().stream_info(f"KV_{bucket}")
    finally:
        await client.close()
    assert info.config.num_replicas == 3


async def _new_leader(cluster: NatsCluster, old: NatsServer) -> None:
    """Wait (bounded) until the surviving members report a stream leader other than ``old``."""
    for _ in range(300):
        try:
            if cluster.stream_leader(STREAM) is not old:
                return
        except KeyError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("no new stream leader within 30 s")


def _connector(cluster: NatsCluster, prefix: str) -> NatsKvBufferedCas:
    return NatsKvBufferedCas.from_settings(Settings(_env(cluster, prefix)))


def _env(cluster: NatsCluster, prefix: str) -> dict[str, str]:
    return {
        "NATS_URL": cluster.url,
        "NATS_KV_BUCKET": BUCKET,
        "NATS_KV_REPLICAS": "3",
        "STATE_PREFIX": prefix,
    }


@pytest.mark.slow
async def test_racing_writers_lose_nothing_and_see_no_error_when_the_stream_leader_is_killed(
    cluster: NatsCluster, socket_dir: Path
) -> None:
    prefix = f"race-{uuid.uuid4().hex[:8]}/"
    process = ConnectorProcess(
        "nats-kv-buffered-cas", socket_dir / "nats-cluster-race.sock", _env(cluster, prefix)
    ).start()
    served = HttpConnector(process.socket_path)
    direct = _connector(cluster, prefix)
    await served.open()
    await direct.open()
    victim = None
    try:
        await direct.write("count", chunks_of(b"0"), size=1)
        stop = asyncio.Event()
        writers = [asyncio.create_task(_writer(c, "count", stop)) for c in (served, direct)]
        await asyncio.sleep(0.5)
        victim = cluster.stream_leader(STREAM)
        victim.kill()  # an election follows: about five seconds without a leader
        await _new_leader(cluster, victim)
        await asyncio.sleep(0.5)  # the writers go on past the election
        stop.set()
        counts = [c for done in await asyncio.gather(*writers) for c in done]
        # Every acknowledged increment is stored, none twice, none lost.
        assert sorted(counts) == list(range(1, len(counts) + 1))
        assert int(await get(direct, "count")) == len(counts)
        # A read right after an acknowledged write returns that write, whichever
        # member the connector's client is connected to.
        for _ in range(50):
            count, etag = await _increment(direct, "count")
            assert (await direct.stat("count")).etag == etag
            assert int(await get(served, "count")) == count
        # With the killed member still down and listed first, a new connector
        # reaches the others and creates a bucket of three replicas.
        await _create_with_one_down(cluster, victim)
        victim.start()
        last = cluster.wait_caught_up(STREAM)
        assert cluster.stream_state(victim, STREAM)["last_seq"] == last
        assert await _count_on(victim, prefix + "count") == count
    finally:
        if victim is not None and victim.process is None:
            victim.start()
        await served.close()
        await direct.close()
        process.stop()


async def test_a_write_whose_acknowledgement_is_lost_is_sent_again_and_stored_once(
    cluster: NatsCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reply to a stored compare-and-swap publish never arrives (as when its server dies)."""
    connector = _connector(cluster, f"lost-{uuid.uuid4().hex[:8]}/")
    await connector.open()
    try:
        first = await connector.write("k", chunks_of(b"1"), size=1)
        publish = JetStreamContext.publish
        stored: list[int] = []

        async def lose_the_first_ack(self: JetStreamContext, *args: Any, **kwargs: Any) -> Any:
            ack = await publish(self, *args, **kwargs)
            if not stored:
                stored.append(ack.seq)
                raise nats.errors.TimeoutError
            return ack

        monkeypatch.setattr(JetStreamContext, "publish", lose_the_first_ack)
        written = await connector.write(
            "k", chunks_of(b"2"), size=1, condition=WriteCondition(if_match=first.etag)
        )
        # Answered with the revision stored the first time, not a conflict with
        # itself and not a second copy.
        assert stored
        assert written.etag == str(stored[0])
        leader = cluster.stream_leader(STREAM)
        assert cluster.stream_state(leader, STREAM)["last_seq"] == stored[0]
        assert await get(connector, "k") == b"2"
    finally:
        await connector.close()


@pytest.mark.soak
def test_cas_counter_is_exact_when_the_stream_leader_is_killed(
    rig: Rig, cluster: NatsCluster
) -> None:
    """40 messages, two racing pods; the member leading the bucket is SIGKILLed a third of the way in."""
    _kill_then_count(rig, cluster, ["stream-leader"], 40)


@pytest.mark.soak
@pytest.mark.parametrize("role", ["meta-leader", "follower"])
def test_cas_counter_is_exact_when_another_member_is_killed(
    rig: Rig, cluster: NatsCluster, role: str
) -> None:
    """The JetStream meta leader, or a member leading nothing, SIGKILLed instead."""
    _kill_then_count(rig, cluster, [role], 40)


@pytest.mark.soak
def test_cas_counter_is_exact_while_every_role_is_killed_in_turn(
    rig: Rig, cluster: NatsCluster
) -> None:
    """150 messages; the stream leader, the meta leader and a follower killed one after another."""
    _kill_then_count(
        rig, cluster, ["stream-leader", "meta-leader", "follower", "stream-leader"], 150
    )
