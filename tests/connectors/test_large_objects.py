"""Large objects through the S3 and GCS connectors behind a capped link, as real stores serve them.

moto and fake-gcs-server sit behind ``ShapedLink`` (every connection capped
at 12 MB/s each way, as a real store caps one stream), which also counts
connections and bytes, so these tests can check what users rely on without
timing anything: checksummed round trips through every S3 and GCS connector
and the file API, reads fanned out over several connections within the
configured bound, an overwrite during a fanned-out read giving ``ESTALE`` or
the old bytes and never a mix, a connector killed mid-upload leaving the old
version, shuffled zip-member reads fetching at most 1.5x what they serve,
and connector memory within ``S3_PARTS_IN_FLIGHT`` parts. The 1 GiB round
trips run with ``--soak``.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import random
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

import asya_state_runtime
from asya_state_cli.connector_process import ConnectorProcess
from asya_state_cli.servers.fake_gcs import PROJECT, FakeGcsServer
from asya_state_cli.servers.moto import ACCESS_KEY, REGION, SECRET_KEY, MotoServer
from asya_state_cli.servers.shaper import ShapedLink
from asya_state_connectors.backends.object_store.prefetch import Stale
from asya_state_connectors.client import HttpConnector
from asya_state_connectors.errors import ConnectorError
from asya_state_connectors.interface import Connector
from asya_state_connectors.registry import connector_class
from asya_state_connectors.settings import Settings
from tests.memory import PeakRss

MiB = 1024 * 1024
CAP = 12_000_000  # bytes per second, per connection and direction
BUCKET = "large-objects"
SIZE = 64 * MiB
# Mount name -> (connector, store, write mode).
MOUNTS = {
    "s3pass": ("s3-passthrough", "s3", "passthrough"),
    "s3lww": ("s3-buffered-lww", "s3", "buffered"),
    "s3cas": ("s3-buffered-cas", "s3", "buffered"),
    "gcslww": ("gcs-buffered-lww", "gcs", "buffered"),
    "gcscas": ("gcs-buffered-cas", "gcs", "buffered"),
}


def blocks(size: int, seed: int) -> Iterator[bytes]:
    """``size`` bytes in 1 MiB blocks that all differ, so a misplaced part changes the digest."""
    for index, offset in enumerate(range(0, size, MiB)):
        yield random.Random(seed * 1_000_003 + index).randbytes(min(MiB, size - offset))


def digest(size: int, seed: int) -> str:
    total = hashlib.sha256()
    for block in blocks(size, seed):
        total.update(block)
    return total.hexdigest()


async def body(size: int, seed: int) -> AsyncIterator[bytes]:
    for block in blocks(size, seed):
        yield block


@dataclass
class Store:
    server: Any
    link: ShapedLink
    env: dict[str, str]


@pytest.fixture(scope="module")
def s3(moto_server: MotoServer) -> Iterator[Store]:
    moto_server.create_bucket(BUCKET)
    with ShapedLink(moto_server.url, rate=CAP) as link:
        env = moto_server.connector_env(BUCKET)
        env["AWS_ENDPOINT_URL"] = link.url
        yield Store(moto_server, link, env)


@pytest.fixture(scope="module")
def gcs(fake_gcs_server: FakeGcsServer) -> Iterator[Store]:
    fake_gcs_server.create_bucket(BUCKET)
    with ShapedLink(fake_gcs_server.url, rate=CAP) as link:
        env = fake_gcs_server.connector_env(BUCKET)
        env["STORAGE_EMULATOR_HOST"] = link.url
        yield Store(fake_gcs_server, link, env)


@pytest.fixture
def prefix() -> str:
    return f"large-{uuid.uuid4().hex[:10]}/"


@pytest.fixture(scope="module")
def s3_raw(moto_server: MotoServer) -> Iterator[Any]:
    client = boto3.client(
        "s3",
        endpoint_url=moto_server.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def gcs_raw(fake_gcs_server: FakeGcsServer) -> Iterator[Any]:
    client = storage.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": fake_gcs_server.url},
    )
    yield client.bucket(BUCKET)
    client.close()


def overwrite(store: str, raw: Any, full_key: str, data: bytes) -> None:
    """Replace the object behind the connector's back, with the store's own client."""
    if store == "s3":
        raw.put_object(Bucket=BUCKET, Key=full_key, Body=data)
    else:
        raw.blob(full_key).upload_from_string(data)


@pytest.fixture(scope="module")
def mounted(s3: Store, gcs: Store) -> Iterator[Path]:
    """Every S3 and GCS connector as a mount of the runtime installed in this process."""
    stores = {"s3": s3, "gcs": gcs}
    with tempfile.TemporaryDirectory(prefix="asya-lo-", dir="/tmp") as sockets:
        processes = []
        try:
            for mount, (name, store, _) in MOUNTS.items():
                env = {**stores[store].env, "STATE_PREFIX": f"{mount}-{uuid.uuid4().hex[:6]}/"}
                process = ConnectorProcess(name, Path(sockets) / f"{mount}.sock", env)
                processes.append(process.start())
            spec = ";".join(
                f"{mount}:/large/{mount}" + (":write=passthrough" if mode == "passthrough" else "")
                for mount, (_, _, mode) in MOUNTS.items()
            )
            asya_state_runtime.install(spec, socket_dir=sockets)
            try:
                yield Path("/large")
            finally:
                asya_state_runtime.uninstall()
        finally:
            for process in processes:
                process.stop()


def round_trip(root: Path, mount: str, link: ShapedLink, size: int) -> None:
    path = f"{root}/{mount}/weights-{uuid.uuid4().hex[:6]}.bin"
    with open(path, "wb") as file:
        for block in blocks(size, seed=size):
            file.write(block)
    link.counters(reset=True)
    read = hashlib.sha256()
    buffer = bytearray(MiB)
    with open(path, "rb") as file:
        while count := file.readinto(buffer):
            read.update(memoryview(buffer)[:count])
    fetched = link.counters(reset=True)
    assert read.hexdigest() == digest(size, seed=size)
    # Fanned out over several connections, and nothing fetched twice.
    assert fetched.peak_open >= 4, fetched
    assert size <= fetched.down < size * 1.02 + MiB, fetched


@pytest.mark.slow
@pytest.mark.parametrize("mount", list(MOUNTS))
def test_a_round_trip_through_the_file_api_keeps_every_byte(
    mounted: Path, s3: Store, gcs: Store, mount: str
) -> None:
    link = (s3 if MOUNTS[mount][1] == "s3" else gcs).link
    round_trip(mounted, mount, link, SIZE)


@pytest.mark.soak
@pytest.mark.parametrize("mount", list(MOUNTS))
def test_a_1_gib_round_trip_through_the_file_api_keeps_every_byte(
    mounted: Path, s3: Store, gcs: Store, mount: str
) -> None:
    link = (s3 if MOUNTS[mount][1] == "s3" else gcs).link
    round_trip(mounted, mount, link, 1024 * MiB)


@pytest.mark.slow
@pytest.mark.parametrize("mount", ["s3cas", "gcscas"])
def test_an_overwrite_during_a_fanned_out_read_is_estale_or_the_old_bytes(
    mounted: Path, s3_raw: Any, gcs_raw: Any, mount: str
) -> None:
    """Never a mix: the file either fails with ESTALE or reads exactly what it opened."""
    size = 48 * MiB
    name = f"model-{uuid.uuid4().hex[:6]}.bin"
    path = f"{mounted}/{mount}/{name}"
    with open(path, "wb") as file:
        for block in blocks(size, seed=1):
            file.write(block)
    store = MOUNTS[mount][1]
    raw = s3_raw if store == "s3" else gcs_raw
    full_key = _full_key(raw, store, name)
    read = hashlib.sha256()
    failure: OSError | None = None
    with open(path, "rb") as file:
        read.update(file.read(4 * MiB))
        overwrite(store, raw, full_key, b"the new version")
        try:
            while chunk := file.read(MiB):
                read.update(chunk)
        except OSError as exc:
            failure = exc
    if failure is not None:
        assert failure.errno == errno.ESTALE, failure
    else:
        assert read.hexdigest() == digest(size, seed=1)


def _leftovers(raw: Any, store: str, full_key: str) -> list[str]:
    """Unfinished S3 multipart uploads of ``full_key``, or GCS temporary part objects beside it."""
    if store == "s3":
        uploads = raw.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        return [upload["Key"] for upload in uploads if upload["Key"] == full_key]
    mount_prefix = full_key.rsplit("/", 1)[0] + "/"
    return [
        blob.name for blob in raw.client.list_blobs(raw, prefix=mount_prefix + ".asya-tmp-uploads/")
    ]


@pytest.mark.slow
@pytest.mark.parametrize("mount", ["s3cas", "gcscas"])
def test_a_conflicting_write_during_a_streamed_buffered_write_loses_cleanly(
    mounted: Path, s3: Store, gcs: Store, s3_raw: Any, gcs_raw: Any, mount: str
) -> None:
    """Write-behind keeps compare-and-swap: the revision read first guards the final step."""
    store = MOUNTS[mount][1]
    raw, link = (s3_raw, s3.link) if store == "s3" else (gcs_raw, gcs.link)
    name = f"cas-{uuid.uuid4().hex[:6]}.bin"
    path = f"{mounted}/{mount}/{name}"
    with open(path, "wb") as file:
        file.write(b"v1")
    with open(path, "rb") as file:
        assert file.read() == b"v1"  # the revision the next write is conditional on
    full_key = _full_key(raw, store, name)
    link.counters(reset=True)
    writer = open(path, "wb")  # noqa: SIM115 - closed in the raises block
    written = blocks(32 * MiB, seed=8)
    for _ in range(24):
        writer.write(next(written))
    # Sent while the file is still open: without write-behind nothing leaves before close.
    deadline = time.monotonic() + 10
    while link.counters().up < 8 * MiB and time.monotonic() < deadline:
        time.sleep(0.05)
    assert link.counters().up >= 8 * MiB
    overwrite(store, raw, full_key, b"v2 from another replica")
    for block in written:
        writer.write(block)
    with pytest.raises(FileExistsError):
        writer.close()
    with open(path, "rb") as file:
        assert file.read() == b"v2 from another replica"
    _assert_no_leftovers(raw, store, full_key)


@pytest.mark.slow
@pytest.mark.parametrize("mount", ["s3cas", "gcslww"])
def test_a_handler_that_raises_mid_stream_leaves_the_old_version(
    mounted: Path, s3_raw: Any, gcs_raw: Any, mount: str
) -> None:
    store = MOUNTS[mount][1]
    raw = s3_raw if store == "s3" else gcs_raw
    name = f"kept-{uuid.uuid4().hex[:6]}.bin"
    path = f"{mounted}/{mount}/{name}"
    with open(path, "wb") as file:
        file.write(b"old version")
    full_key = _full_key(raw, store, name)

    def fail_mid_stream() -> None:
        with open(path, "wb") as file:
            for block in blocks(24 * MiB, seed=9):
                file.write(block)
            raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError):
        fail_mid_stream()
    with open(path, "rb") as check:
        assert check.read() == b"old version"
    _assert_no_leftovers(raw, store, full_key)


def _assert_no_leftovers(raw: Any, store: str, full_key: str) -> None:
    """The upload given up leaves nothing: the connector aborts it when the stream drops."""
    deadline = time.monotonic() + 10
    while (left := _leftovers(raw, store, full_key)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == []


def _full_key(raw: Any, store: str, name: str) -> str:
    if store == "s3":
        keys = [o["Key"] for o in raw.list_objects_v2(Bucket=BUCKET)["Contents"]]
    else:
        keys = [blob.name for blob in raw.client.list_blobs(raw)]
    (full,) = [key for key in keys if key.endswith("/" + name)]
    return full


async def _opened(name: str, env: dict[str, str]) -> Connector:
    connector = connector_class(name).from_settings(Settings(env))
    await connector.open()
    return connector


@pytest.mark.parametrize("store", ["s3", "gcs"])
async def test_ranges_after_an_overwrite_are_refused_not_mixed(
    s3: Store, gcs: Store, s3_raw: Any, gcs_raw: Any, prefix: str, store: str
) -> None:
    """The connector pins every range of one read to the revision its first range saw."""
    setup = s3 if store == "s3" else gcs
    small = {"S3_PART_SIZE": str(5 * MiB), "GCS_CHUNK_SIZE": str(1 * MiB)}
    env = {**setup.env, **small, "STATE_PREFIX": prefix}
    name = "s3-buffered-lww" if store == "s3" else "gcs-buffered-lww"
    connector = await _opened(name, {**env, "S3_PARTS_IN_FLIGHT": "1", "GCS_PARTS_IN_FLIGHT": "1"})
    try:
        size = 12 * MiB
        await connector.write("pinned.bin", body(size, seed=2), size=size)
        stream = await connector.read("pinned.bin")
        first = await anext(stream.chunks)
        overwrite(store, s3_raw if store == "s3" else gcs_raw, prefix + "pinned.bin", b"v2")
        received = [first]

        async def drain() -> None:
            async for chunk in stream.chunks:
                received.append(chunk)

        with pytest.raises(Stale):
            await drain()
        assert sum(map(len, received)) < size
    finally:
        await connector.close()


@pytest.mark.parametrize("store", ["s3", "gcs"])
async def test_closing_a_read_stops_the_ranges_in_flight(
    s3: Store, gcs: Store, prefix: str, store: str
) -> None:
    setup = s3 if store == "s3" else gcs
    name = "s3-buffered-lww" if store == "s3" else "gcs-buffered-lww"
    connector = await _opened(name, {**setup.env, "STATE_PREFIX": prefix})
    try:
        size = 48 * MiB
        await connector.write("closed.bin", body(size, seed=6), size=size)
        setup.link.counters(reset=True)
        stream = await connector.read("closed.bin")
        await anext(stream.chunks)
        await stream.aclose()
        await asyncio.sleep(1.0)  # what was in flight has ended by now, at the cap or sooner
        fetched = setup.link.counters(reset=True)
    finally:
        await connector.close()
    # The first range and the one after it at most: nothing beyond the window.
    assert fetched.down < 2 * MiB, fetched


@pytest.mark.slow
def test_seeking_away_from_a_file_being_read_stops_its_read_ahead(mounted: Path, s3: Store) -> None:
    path = f"{mounted}/s3lww/seek-{uuid.uuid4().hex[:6]}.bin"
    size = 64 * MiB
    with open(path, "wb") as file:
        for block in blocks(size, seed=7):
            file.write(block)
    s3.link.counters(reset=True)
    with open(path, "rb") as file:
        file.read(1)
        file.seek(size // 2)
        middle = random.Random(7 * 1_000_003 + size // 2 // MiB).randbytes(MiB)
        assert file.read(10) == middle[:10]
    time.sleep(1.0)
    fetched = s3.link.counters(reset=True)
    assert fetched.down < 4 * MiB, fetched


@pytest.mark.slow
@pytest.mark.parametrize("name", ["s3-passthrough", "s3-buffered-cas", "gcs-buffered-cas"])
async def test_a_connector_killed_mid_upload_leaves_the_old_version(
    s3: Store, gcs: Store, s3_raw: Any, gcs_raw: Any, prefix: str, name: str
) -> None:
    store = "s3" if name.startswith("s3") else "gcs"
    env = {**(s3 if store == "s3" else gcs).env, "STATE_PREFIX": prefix}
    raw = s3_raw if store == "s3" else gcs_raw
    with tempfile.TemporaryDirectory(prefix="asya-kill-", dir="/tmp") as sockets:
        process = ConnectorProcess(name, Path(sockets) / "k.sock", env).start()
        client = HttpConnector(process.socket_path)
        await client.open()
        try:
            old = await client.write("state.bin", body(MiB, seed=3), size=MiB)
            sent = 0
            killed = threading.Event()

            async def killing_body() -> AsyncIterator[bytes]:
                nonlocal sent
                async for block in body(48 * MiB, seed=4):
                    if sent >= 24 * MiB and not killed.is_set():
                        # Parts are on their way to the store: crash now.
                        killed.set()
                        await asyncio.to_thread(process.kill)
                    sent += len(block)
                    yield block

            with pytest.raises((ConnectorError, OSError)) as info:
                await client.write("state.bin", killing_body(), size=48 * MiB)
            assert killed.is_set(), info.value
        finally:
            await client.close()
            process.stop()
    if store == "s3":
        kept = raw.get_object(Bucket=BUCKET, Key=prefix + "state.bin")
        assert kept["ETag"].strip('"') == old.etag
        assert hashlib.sha256(kept["Body"].read()).hexdigest() == digest(MiB, seed=3)
    else:
        blob = raw.get_blob(prefix + "state.bin")
        assert str(blob.generation) == old.etag
        assert hashlib.sha256(blob.download_as_bytes()).hexdigest() == digest(MiB, seed=3)


@pytest.mark.slow
def test_shuffled_zip_member_reads_fetch_at_most_one_and_a_half_times_what_they_serve(
    mounted: Path, s3: Store
) -> None:
    rng = random.Random(11)
    members: dict[str, bytes] = {}
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_STORED) as archive:
        for number in range(240):
            data = rng.randbytes(rng.randint(16 * 1024, 384 * 1024))
            members[f"images/{number:04d}.bin"] = data
            archive.writestr(f"images/{number:04d}.bin", data)
    path = f"{mounted}/s3lww/images-{uuid.uuid4().hex[:6]}.zip"
    with open(path, "wb") as file:
        file.write(packed.getvalue())
    wanted = rng.sample(sorted(members), 60)
    s3.link.counters(reset=True)
    served = 0
    with open(path, "rb") as file, zipfile.ZipFile(file) as archive:
        for name in wanted:
            data = archive.read(name)
            assert data == members[name]
            served += len(data)
    fetched = s3.link.counters(reset=True)
    assert fetched.down <= 1.5 * served, (fetched.down, served)


@pytest.mark.slow
async def test_a_slowly_read_object_holds_at_most_the_parts_in_flight(
    s3: Store, prefix: str, socket_dir: Path
) -> None:
    """A reader slower than the store: the connector holds its window, not the object."""
    size = 64 * MiB
    env = {**s3.env, "STATE_PREFIX": prefix, "S3_PARTS_IN_FLIGHT": "4"}
    with ConnectorProcess(
        "s3-buffered-lww", socket_dir / f"slow-{prefix[6:-1]}.sock", env
    ) as process:
        client = HttpConnector(process.socket_path)
        await client.open()
        try:
            await client.write("big.bin", body(size, seed=5), size=size)
            s3.link.counters(reset=True)
            received = hashlib.sha256()
            with PeakRss(process.pid) as rss:
                stream = await client.read("big.bin")
                async for chunk in stream.chunks:
                    received.update(chunk)
                    await asyncio.sleep(0.01)
            fetched = s3.link.counters(reset=True)
        finally:
            await client.close()
    assert received.hexdigest() == digest(size, seed=5)
    # Four ranged GETs at a time, and the window of four 8 MiB parts in memory.
    assert fetched.peak_open <= 5, fetched
    growth = rss.peak - rss.baseline
    assert growth < 4 * 8 * MiB + 40 * MiB, f"the connector grew {growth / MiB:.0f} MiB"
