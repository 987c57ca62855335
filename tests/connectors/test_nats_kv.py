"""nats-kv-buffered-cas specifics beyond the conformance suite, against real nats-server processes.

Key encoding properties, compare-and-swap between independent clients,
markers and expiry, the payload limit, buckets with and without per-message
TTL, interoperability with plain NATS KV clients, credentials and
permissions, configuration errors, and outages with recovery.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.js import api

from asya_state_cli.connector_process import ConnectorProcess
from asya_state_cli.servers.base import free_port
from asya_state_cli.servers.nats import NatsServer
from asya_state_connectors.backends.nats_kv.backend import HEADER_ROOM, NatsKvBufferedCas
from asya_state_connectors.backends.nats_kv.key_encoding import (
    decode_key,
    encode_key,
    prefix_filter,
)
from asya_state_connectors.client import HttpConnector
from asya_state_connectors.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    Conflict,
    ConnectorError,
    InvalidKey,
    NotFound,
    PermissionDenied,
    TooLarge,
    Unsupported,
)
from asya_state_connectors.interface import Capability, WriteCondition
from asya_state_connectors.keys import validate_key
from asya_state_connectors.settings import Settings
from tests.conformance.helpers import get, pattern_body, put

MiB = 1024 * 1024
BUCKET = "unit"


def make(url: str, prefix: str, **env: str) -> NatsKvBufferedCas:
    return NatsKvBufferedCas.from_settings(
        Settings({"NATS_URL": url, "NATS_KV_BUCKET": BUCKET, "STATE_PREFIX": prefix, **env})
    )


@pytest.fixture
def prefix() -> str:
    return f"unit-{uuid.uuid4().hex[:10]}/"


@pytest.fixture
async def connector(nats_server: NatsServer, prefix: str) -> AsyncIterator[NatsKvBufferedCas]:
    opened = make(nats_server.url, prefix)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def js(nats_server: NatsServer) -> AsyncIterator[object]:
    """A plain NATS JetStream client, as another application would use."""
    nc = await nats.connect(nats_server.url)
    yield nc.jetstream()
    await nc.close()


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, limit: float = 20.0) -> None:
    """Poll a condition with a generous bound; the bound is a hang guard, not an assertion on speed."""
    deadline = time.monotonic() + limit
    while not await check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.1)


# -- key encoding -----------------------------------------------------------------


def _valid(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidKey:
        return False
    return True


segments = st.text(min_size=1, max_size=12).filter(lambda s: "/" not in s and "\x00" not in s)
keys = st.lists(segments, min_size=1, max_size=4).map("/".join).filter(_valid)


def _subject_matches(subject: str, pattern: str) -> bool:
    """NATS wildcard rules: ``*`` is one token, a final ``>`` is one or more."""
    tokens, wanted = subject.split("."), pattern.split(".")
    for index, want in enumerate(wanted):
        if want == ">":
            return len(tokens) > index
        if index >= len(tokens) or (want != "*" and want != tokens[index]):
            return False
    return len(tokens) == len(wanted)


@given(keys)
def test_any_valid_key_encodes_to_nats_characters_and_back(key: str) -> None:
    stored = encode_key(key)
    assert set(stored) <= set("-_=.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    assert all(stored.split(".")), "empty subject token"
    assert decode_key(stored) == key
    assert stored.count(".") == key.count("/"), "each segment must be one subject token"


@given(keys, st.data())
def test_the_prefix_filter_selects_every_key_under_the_prefix(
    key: str, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(key)))
    assert _subject_matches(encode_key(key), prefix_filter(key[:cut]))


@pytest.mark.parametrize("stored", ["a/b", "a..b", "=2e", "=41", "x=4", "=FF", "", "a.b."])
def test_keys_this_encoding_never_produces_are_rejected(stored: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError: the listing skips the key
        decode_key(stored)


def test_common_names_stay_readable() -> None:
    assert encode_key("sessions/user-1/history.json") == "sessions.user-1.history=2Ejson"
    assert encode_key("ünï code/a b") == "=C3=BCn=C3=AF=20code.a=20b"


# -- compare-and-swap between independent clients -------------------------------------


async def test_a_delete_marker_from_another_client_reads_as_absent(
    connector: NatsKvBufferedCas, js: object, prefix: str
) -> None:
    written = await put(connector, "doc", b"v1")
    kv = await js.key_value(BUCKET)  # type: ignore[attr-defined]
    await kv.delete(encode_key(prefix + "doc"))  # a marker stays: nobody purges it
    with pytest.raises(NotFound):
        await connector.stat("doc")
    assert (await connector.list("")).entries == []
    with pytest.raises(Conflict):
        await put(connector, "doc", b"stale", condition=WriteCondition(if_match=written.etag))
    await put(connector, "doc", b"v2", condition=WriteCondition(if_none_match=True))
    assert await get(connector, "doc") == b"v2"


async def test_deleting_leaves_no_marker_behind(
    connector: NatsKvBufferedCas, js: object, prefix: str
) -> None:
    await put(connector, "gone", b"x")
    await connector.delete("gone")
    info = await js.stream_info(
        f"KV_{BUCKET}", subjects_filter=f"$KV.{BUCKET}.{encode_key(prefix + 'gone')}"
    )  # type: ignore[attr-defined]
    assert not info.state.subjects, "the delete marker was not purged"


# -- interoperability ----------------------------------------------------------------


async def test_plain_kv_clients_see_our_values_and_foreign_keys_are_skipped(
    connector: NatsKvBufferedCas, js: object, prefix: str
) -> None:
    await put(connector, "dir/value.json", b'{"x": 1}', content_type="application/json")
    kv = await js.key_value(BUCKET)  # type: ignore[attr-defined]
    entry = await kv.get(encode_key(prefix + "dir/value.json"))
    assert entry.value == b'{"x": 1}'
    await kv.put(encode_key(prefix + "dir/from-cli"), b"hello")
    await kv.put(encode_key(prefix.rstrip("/")) + ".has/slash", b"not ours")
    listing = await connector.list("", delimiter=None)
    assert [m.key for m in listing.entries] == ["dir/from-cli", "dir/value.json"]
    assert await get(connector, "dir/from-cli") == b"hello"


# -- size limit ------------------------------------------------------------------------


async def test_the_limit_is_the_server_max_payload_less_header_room(
    connector: NatsKvBufferedCas, nats_server: NatsServer
) -> None:
    limit = nats_server.max_payload - HEADER_ROOM
    assert connector.max_object_size == limit
    content_type = "application/x-" + "y" * 1000
    await connector.write("edge.bin", pattern_body(limit), content_type=content_type)
    assert (await connector.stat("edge.bin")).size == limit
    with pytest.raises(TooLarge):
        await connector.write("edge.bin", pattern_body(limit + 1))
    assert (await connector.stat("edge.bin")).content_type == content_type


async def test_a_declared_size_over_the_limit_is_refused_before_reading_the_body(
    connector: NatsKvBufferedCas,
) -> None:
    started = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal started
        started = True
        yield b"x"

    with pytest.raises(TooLarge):
        await connector.write("huge.bin", body(), size=64 * MiB)
    assert not started


async def test_a_configured_limit_below_max_payload_wins(
    nats_server: NatsServer, prefix: str
) -> None:
    connector = make(nats_server.url, prefix, NATS_MAX_VALUE_BYTES="1000")
    await connector.open()
    try:
        assert connector.max_object_size == 1000
        with pytest.raises(TooLarge):
            await put(connector, "k", b"x" * 1001)
    finally:
        await connector.close()


# -- TTL and buckets ---------------------------------------------------------------------


async def test_an_expired_key_is_absent(connector: NatsKvBufferedCas) -> None:
    await put(connector, "short-lived", b"x")
    await connector.set_xattr("short-lived", "ttl", "1")
    assert await connector.get_xattr("short-lived", "ttl") in ("0", "1")

    async def gone() -> bool:
        try:
            await connector.stat("short-lived")
        except NotFound:
            return True
        return False

    await _eventually(gone, "the key to expire")
    assert (await connector.list("")).entries == []
    await put(connector, "short-lived", b"again", condition=WriteCondition(if_none_match=True))


async def test_a_marker_left_by_bucket_expiry_reads_as_absent(
    nats_server: NatsServer, js: object
) -> None:
    bucket = f"expiring{uuid.uuid4().hex[:6]}"
    await js.create_key_value(  # type: ignore[attr-defined]
        api.KeyValueConfig(bucket=bucket, history=1, ttl=1.0, limit_marker_ttl=60.0)
    )
    connector = NatsKvBufferedCas.from_settings(
        Settings({"NATS_URL": nats_server.url, "NATS_KV_BUCKET": bucket})
    )
    try:
        await put(connector, "k", b"x")
        assert int(await connector.get_xattr("k", "ttl")) in (0, 1)

        async def marked() -> bool:
            info = await js.stream_info(f"KV_{bucket}")  # type: ignore[attr-defined]
            return bool(info.state.messages) and info.state.first_seq > 1

        await _eventually(marked, "the server to replace the entry with a marker")
        with pytest.raises(NotFound):
            await connector.stat("k")
        assert (await connector.list("")).entries == []
        await put(connector, "k", b"y", condition=WriteCondition(if_none_match=True))
    finally:
        await connector.close()


async def test_a_bucket_without_per_key_ttl_reports_its_max_age_read_only(
    nats_server: NatsServer, js: object
) -> None:
    bucket = f"nomsgttl{uuid.uuid4().hex[:6]}"
    await js.add_stream(  # type: ignore[attr-defined]
        api.StreamConfig(
            name=f"KV_{bucket}",
            subjects=[f"$KV.{bucket}.>"],
            max_msgs_per_subject=1,
            max_age=3600.0,
            allow_direct=True,
            allow_rollup_hdrs=True,
            deny_delete=True,
        )
    )
    connector = NatsKvBufferedCas.from_settings(
        Settings({"NATS_URL": nats_server.url, "NATS_KV_BUCKET": bucket})
    )
    await connector.open()
    try:
        assert not connector.supports(Capability.TTL)
        await put(connector, "k", b"x")
        assert 3590 <= int(await connector.get_xattr("k", "ttl")) <= 3600
        with pytest.raises(Unsupported):
            await connector.set_xattr("k", "ttl", "60")
    finally:
        await connector.close()


async def test_a_missing_bucket_is_created_unless_disabled(
    nats_server: NatsServer, js: object
) -> None:
    bucket = f"fresh{uuid.uuid4().hex[:6]}"
    env = {"NATS_URL": nats_server.url, "NATS_KV_BUCKET": bucket}
    refusing = NatsKvBufferedCas.from_settings(Settings({**env, "NATS_KV_CREATE_BUCKET": "false"}))
    with pytest.raises(BackendError, match="NATS_KV_CREATE_BUCKET"):
        await refusing.check_health()
    creating = NatsKvBufferedCas.from_settings(Settings(env))
    try:
        await creating.check_health()
        info = await js.stream_info(f"KV_{bucket}")  # type: ignore[attr-defined]
        assert info.config.allow_msg_ttl
        assert info.config.max_msgs_per_subject == 1
    finally:
        await creating.close()
        await refusing.close()


# -- credentials, permissions, configuration ----------------------------------------------

ACCOUNTS = """
accounts {
  STATE {
    jetstream: enabled
    users: [
      {user: owner, password: owner-secret}
      {user: reader, password: reader-secret, permissions: {publish: {deny: ["$KV.>"]}}}
    ]
  }
}
"""


async def test_credentials_and_publish_permissions() -> None:
    with NatsServer(extra_config=ACCOUNTS) as server:

        def as_user(user: str, password: str) -> NatsKvBufferedCas:
            return make(
                server.url, "acl/", NATS_USER=user, NATS_PASSWORD=password, NATS_TIMEOUT_SECONDS="1"
            )

        owner, reader = as_user("owner", "owner-secret"), as_user("reader", "reader-secret")
        intruder = as_user("reader", "wrong")
        try:
            await put(owner, "doc", b"owned")
            assert await get(reader, "doc") == b"owned"
            with pytest.raises(PermissionDenied):
                await put(reader, "doc", b"vandalised")
            with pytest.raises(PermissionDenied):
                await intruder.check_health()
            assert await get(owner, "doc") == b"owned"
        finally:
            for client in (owner, reader, intruder):
                await client.close()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "NATS_URL"),
        ({"NATS_URL": "http://nats:4222"}, "NATS_URL"),
        ({"NATS_URL": "nats://n", "NATS_KV_BUCKET": "has.dot"}, "NATS_KV_BUCKET"),
        ({"NATS_URL": "nats://n", "NATS_USER": "u"}, "NATS_PASSWORD"),
        ({"NATS_URL": "nats://n", "NATS_KV_STORAGE": "tape"}, "NATS_KV_STORAGE"),
        ({"NATS_URL": "nats://n", "NATS_MAX_VALUE_BYTES": "-1"}, "NATS_MAX_VALUE_BYTES"),
        ({"NATS_URL": "nats://n", "NATS_FAILOVER_SECONDS": "-1"}, "NATS_FAILOVER_SECONDS"),
    ],
)
def test_configuration_errors_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        NatsKvBufferedCas.from_settings(Settings(env))


# -- outages --------------------------------------------------------------------------------


async def _works(connector: NatsKvBufferedCas | HttpConnector, key: str) -> bool:
    try:
        await put(connector, key, b"back")
        return await get(connector, key) == b"back"
    except ConnectorError:
        return False


async def test_nats_down_is_503_and_both_paths_recover_with_the_data(socket_dir: Path) -> None:
    with NatsServer() as server:
        env = {"NATS_URL": server.url, "NATS_KV_BUCKET": "outage"}
        direct = NatsKvBufferedCas.from_settings(Settings(env))
        await direct.open()
        process = ConnectorProcess(
            "nats-kv-buffered-cas", socket_dir / "nats-outage.sock", env
        ).start()
        served = HttpConnector(process.socket_path)
        await served.open()
        try:
            await put(direct, "kept", b"before the outage")
            server.stop()
            for connector in (direct, served):
                with pytest.raises(BackendUnavailable):
                    await get(connector, "kept")
                with pytest.raises(BackendUnavailable):
                    await put(connector, "k", b"during")
                with pytest.raises(BackendUnavailable):
                    await connector.check_health()
            server.start()
            for connector in (direct, served):
                await _eventually(
                    functools.partial(_works, connector, "k"), "recovery after a restart"
                )
                assert await get(connector, "kept") == b"before the outage"
        finally:
            await served.close()
            await direct.close()
            process.stop()


async def test_a_connector_started_before_nats_serves_once_it_is_up() -> None:
    port = free_port()
    connector = NatsKvBufferedCas.from_settings(
        Settings({"NATS_URL": f"nats://127.0.0.1:{port}", "NATS_KV_BUCKET": "late"})
    )
    await connector.open()
    try:
        with pytest.raises(BackendUnavailable):
            await connector.check_health()
        with NatsServer(port=port):
            await _eventually(functools.partial(_works, connector, "k"), "the first connection")
    finally:
        await connector.close()
