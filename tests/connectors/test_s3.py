"""S3 connector specifics beyond the conformance suite, against moto's S3 server.

Prefix joining, revisions that S3 derives from content, streamed multipart
uploads (part size, abort on failure or disconnect, create-only on
completion), server-side multipart copies, attributes (presigned URLs that
really download, versions, content type), listing around console folder
placeholders, the error table against real failures (missing bucket, wrong
credentials, an unreachable, a silent and a throttling endpoint), a 1 GiB
passthrough upload in bounded connector memory, and that the test server
arbitrates racing conditional writes as S3 does (exactly one winner), which
the compare-and-swap connectors rely on.

moto ignores ``If-Match`` on CompleteMultipartUpload, which S3 enforces;
the test server (``moto_atomic``) checks it the way S3 does, so large
compare-and-swap writes are tested as S3 runs them.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import socket
import threading
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions as bx
import pytest

from asya_state_cli.connector_process import ConnectorProcess
from asya_state_cli.servers.base import free_port
from asya_state_cli.servers.moto import ACCESS_KEY, REGION, SECRET_KEY, MotoServer
from asya_state_connectors.backends.s3.api import map_s3_error
from asya_state_connectors.backends.s3.backend import S3BufferedLww, S3Passthrough
from asya_state_connectors.backends.s3.multipart import MultipartUpload, copy_in_parts
from asya_state_connectors.client import HttpConnector
from asya_state_connectors.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    Conflict,
    ConnectorError,
    NotFound,
    PermissionDenied,
    RangeNotSatisfiable,
    TooLarge,
)
from asya_state_connectors.interface import Connector, RangeSpec, WriteCondition
from asya_state_connectors.registry import connector_class
from asya_state_connectors.settings import Settings
from tests.conformance.helpers import (
    digest_of,
    failing_body,
    get,
    pattern_body,
    pattern_digest,
    put,
)
from tests.memory import PeakRss

MiB = 1024 * 1024
BUCKET = "unit-s3"
VERSIONED = "unit-s3-versioned"


@pytest.fixture(scope="module")
def buckets(moto_server: MotoServer) -> None:
    moto_server.create_bucket(BUCKET)
    moto_server.create_bucket(VERSIONED, versioning=True)


@pytest.fixture
def prefix() -> str:
    return f"unit-{uuid.uuid4().hex[:10]}/"


@pytest.fixture
def raw(moto_server: MotoServer) -> Iterator[Any]:
    client = boto3.client(
        "s3",
        endpoint_url=moto_server.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    yield client
    client.close()


@asynccontextmanager
async def opened(name: str, env: dict[str, str]) -> AsyncIterator[Connector]:
    connector = connector_class(name).from_settings(Settings(env))
    await connector.open()
    try:
        yield connector
    finally:
        await connector.close()


def env_for(server: MotoServer, prefix: str, bucket: str = BUCKET, **extra: str) -> dict[str, str]:
    return {**server.connector_env(bucket, prefix), **extra}


def uploads_in_progress(raw: Any, bucket: str, prefix: str) -> list[str]:
    answer = raw.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [upload["Key"] for upload in answer.get("Uploads", [])]


# -- keys and revisions -----------------------------------------------------------


@pytest.mark.usefixtures("buckets")
@pytest.mark.parametrize("written", ["{p}", "{p}/", "/{p}/", "//{p}//sub/"])
async def test_state_prefix_is_joined_without_doubled_separators(
    moto_server: MotoServer, raw: Any, written: str
) -> None:
    base = f"join-{uuid.uuid4().hex[:8]}"
    env = env_for(moto_server, written.format(p=base))
    async with opened("s3-buffered-lww", env) as connector:
        await put(connector, "dir/file.txt", b"x")
        listed = await connector.list("", delimiter=None)
    expected = f"{base}/sub/dir/file.txt" if "sub" in written else f"{base}/dir/file.txt"
    stored = raw.list_objects_v2(Bucket=BUCKET, Prefix=base)["Contents"]
    assert [o["Key"] for o in stored] == [expected]
    assert [m.key for m in listed.entries] == ["dir/file.txt"]


@pytest.mark.usefixtures("buckets")
async def test_identical_rewrite_keeps_the_etag_and_cas_stays_correct(
    moto_server: MotoServer, prefix: str
) -> None:
    """S3 ETags of single-request uploads are content digests: the same bytes, the same revision.

    A writer whose read revision reappears holds exactly the current content,
    so its conditional write is still a correct compare-and-swap; a writer
    holding any other revision loses.
    """
    async with opened("s3-buffered-cas", env_for(moto_server, prefix)) as connector:
        read_one = await put(connector, "n", b"1")
        two = await put(connector, "n", b"2")
        again_one = await put(connector, "n", b"1")
        assert again_one.etag == read_one.etag != two.etag
        with pytest.raises(Conflict):
            await put(connector, "n", b"3", condition=WriteCondition(if_match=two.etag))
        await put(connector, "n", b"2 from 1", condition=WriteCondition(if_match=read_one.etag))
        assert await get(connector, "n") == b"2 from 1"


# -- streamed multipart uploads -----------------------------------------------------


@pytest.mark.usefixtures("buckets")
@pytest.mark.parametrize(
    ("size", "suffix"), [(5 * MiB - 1, ""), (5 * MiB, "-1"), (12 * MiB + 7, "-3")]
)
async def test_passthrough_uses_one_put_below_the_part_size_and_parts_above(
    moto_server: MotoServer, prefix: str, size: int, suffix: str
) -> None:
    env = env_for(moto_server, prefix, S3_PART_SIZE=str(5 * MiB))
    async with opened("s3-passthrough", env) as connector:
        meta = await connector.write("blob", pattern_body(size), size=None)
        assert meta.size == size
        if suffix:
            assert meta.etag.endswith(suffix), meta.etag
        else:
            assert "-" not in meta.etag, meta.etag
        assert await digest_of(connector, "blob") == (pattern_digest(size), size)
        assert (await connector.stat("blob")).etag == meta.etag


@pytest.mark.usefixtures("buckets")
async def test_a_failed_multipart_body_aborts_the_upload_and_keeps_the_old_object(
    moto_server: MotoServer, raw: Any, prefix: str
) -> None:
    env = env_for(moto_server, prefix, S3_PART_SIZE=str(5 * MiB))
    async with opened("s3-passthrough", env) as connector:
        await put(connector, "model.bin", b"version 1")
        with pytest.raises(ConnectionResetError):
            await connector.write("model.bin", failing_body(b"x" * 12 * MiB, 11 * MiB))
        assert await get(connector, "model.bin") == b"version 1"
    assert uploads_in_progress(raw, BUCKET, prefix) == []


@pytest.mark.usefixtures("buckets")
async def test_a_client_that_disconnects_mid_upload_leaves_no_object_and_no_upload(
    moto_server: MotoServer, raw: Any, prefix: str, socket_dir: Path
) -> None:
    env = env_for(moto_server, prefix, S3_PART_SIZE=str(5 * MiB))
    sock = socket_dir / f"s3-cut-{prefix[5:-1]}.sock"
    with ConnectorProcess("s3-passthrough", sock, env) as process:
        client = HttpConnector(process.socket_path)
        await client.open()
        try:
            with pytest.raises((ConnectorError, ConnectionError, OSError)):
                await client.write("cut.bin", failing_body(b"y" * 16 * MiB, 12 * MiB))
            # The connector aborts once it notices the broken body; wait for that.
            for _ in range(200):
                if not uploads_in_progress(raw, BUCKET, prefix):
                    break
                await asyncio.sleep(0.05)
            with pytest.raises(NotFound):
                await client.stat("cut.bin")
        finally:
            await client.close()
    assert uploads_in_progress(raw, BUCKET, prefix) == []


@pytest.mark.usefixtures("buckets")
async def test_create_only_multipart_upload_on_an_existing_key_conflicts_and_aborts(
    moto_server: MotoServer, raw: Any, prefix: str
) -> None:
    env = env_for(moto_server, prefix, S3_PART_SIZE=str(5 * MiB))
    async with opened("s3-passthrough", env) as connector:
        await put(connector, "once.bin", b"first")
        with pytest.raises(Conflict):
            await connector.write(
                "once.bin",
                pattern_body(11 * MiB),
                condition=WriteCondition(if_none_match=True),
            )
        assert await get(connector, "once.bin") == b"first"
    assert uploads_in_progress(raw, BUCKET, prefix) == []


@pytest.mark.usefixtures("buckets")
async def test_a_multipart_upload_conditional_on_a_stale_etag_conflicts(
    moto_server: MotoServer, raw: Any, prefix: str
) -> None:
    env = env_for(moto_server, prefix, S3_PART_SIZE=str(5 * MiB))
    async with opened("s3-passthrough", env) as connector:
        stale = await put(connector, "big.bin", b"1")
        current = await put(connector, "big.bin", b"2")
        with pytest.raises(Conflict):
            await connector.write(
                "big.bin", pattern_body(11 * MiB), condition=WriteCondition(if_match=stale.etag)
            )
        assert await get(connector, "big.bin") == b"2"
        meta = await connector.write(
            "big.bin", pattern_body(11 * MiB), condition=WriteCondition(if_match=current.etag)
        )
        assert meta.etag.endswith("-3")
        assert await digest_of(connector, "big.bin") == (pattern_digest(11 * MiB), 11 * MiB)
    assert uploads_in_progress(raw, BUCKET, prefix) == []


@pytest.mark.usefixtures("buckets")
async def test_multipart_copy_is_server_side_and_keeps_the_content_type(
    moto_server: MotoServer, prefix: str
) -> None:
    """The path copies above 5 GiB take, exercised on a small object."""
    connector = S3BufferedLww.from_settings(Settings(env_for(moto_server, prefix)))
    await connector.open()
    try:
        source = await put(connector, "src.bin", b"z" * (6 * MiB), content_type="image/png")
        upload = MultipartUpload(connector.s3, prefix + "dst.bin", "dst.bin")
        etag = await copy_in_parts(
            upload,
            prefix + "src.bin",
            source.size,
            source.etag,
            content_type="image/png",
            metadata={},
        )
        copied = await connector.stat("dst.bin")
        assert (copied.etag, copied.size, copied.content_type) == (etag, 6 * MiB, "image/png")
        assert await get(connector, "dst.bin") == b"z" * (6 * MiB)
    finally:
        await connector.close()


# -- reads ------------------------------------------------------------------------


@pytest.mark.usefixtures("buckets")
async def test_ranges_on_an_empty_object(moto_server: MotoServer, prefix: str) -> None:
    async with opened("s3-buffered-lww", env_for(moto_server, prefix)) as connector:
        await put(connector, "empty", b"")
        with pytest.raises(RangeNotSatisfiable) as info:
            await get(connector, "empty", RangeSpec(0, None))
        assert info.value.size == 0
        stream = await connector.read("empty", RangeSpec(None, 10))
        assert (stream.start, stream.length) == (0, 0)
        assert [c async for c in stream.chunks] == []
        await stream.aclose()


# -- attributes -------------------------------------------------------------------


@pytest.mark.usefixtures("buckets")
async def test_attributes_and_a_presigned_url_that_downloads(
    moto_server: MotoServer, prefix: str
) -> None:
    env = env_for(moto_server, prefix, VERSIONED, S3_PRESIGN_EXPIRES="120")
    async with opened("s3-buffered-cas", env) as connector:
        meta = await put(connector, "doc.json", b'{"a": 1}', content_type="application/json")
        attrs = await connector.get_xattrs("doc.json")
        assert attrs["etag"] == meta.etag
        assert attrs["url"] == f"s3://{VERSIONED}/{prefix}doc.json"
        assert attrs["content_type"] == "application/json"
        assert attrs["storage_class"] == "STANDARD"
        assert attrs["version"]
        url = await connector.get_xattr("doc.json", "presigned_url")
        assert "X-Amz-Expires=120" in url
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == b'{"a": 1}'
        await put(connector, "doc.json", b"{}")
        assert (await connector.get_xattrs("doc.json"))["version"] != attrs["version"]
        with pytest.raises(NotFound):
            await connector.get_xattr("missing.json", "presigned_url")


@pytest.mark.usefixtures("buckets")
async def test_setting_the_content_type_keeps_the_bytes(
    moto_server: MotoServer, prefix: str
) -> None:
    async with opened("s3-buffered-cas", env_for(moto_server, prefix)) as connector:
        meta = await put(connector, "img", b"\x89PNG", content_type="application/octet-stream")
        await connector.set_xattr("img", "content_type", "image/png")
        after = await connector.stat("img")
        assert after.content_type == "image/png"
        assert await get(connector, "img") == b"\x89PNG"
        # Same bytes, same revision: a writer holding it may still write.
        assert after.etag == meta.etag
        await connector.remove_xattr("img", "content_type")
        assert (await connector.stat("img")).content_type != "image/png"
        with pytest.raises(NotFound):
            await connector.set_xattr("nothing", "content_type", "text/plain")


# -- listing ----------------------------------------------------------------------


@pytest.mark.usefixtures("buckets")
async def test_folder_placeholders_are_not_files(
    moto_server: MotoServer, raw: Any, prefix: str
) -> None:
    raw.put_object(Bucket=BUCKET, Key=f"{prefix}reports/", Body=b"")
    raw.put_object(Bucket=BUCKET, Key=f"{prefix}reports/q1.csv", Body=b"1")
    async with opened("s3-buffered-lww", env_for(moto_server, prefix)) as connector:
        top = await connector.list("")
        assert (top.entries, top.prefixes) == ([], ["reports/"])
        inside = await connector.list("reports/")
        assert [m.key for m in inside.entries] == ["reports/q1.csv"]


# -- the test server: conditional writes are atomic, as on S3 ------------------------

WRITERS = 16
ROUNDS = 10
RACE_BUCKET = "unit-s3-race"


class SpillingMoto(MotoServer):
    """The test server with every object body in a temporary file.

    moto keeps bodies up to about 5 MiB in memory; spilling each one to a file
    puts file I/O between moto's precondition check and its store, where other
    request threads get to run. A check that is not atomic then loses within
    a few rounds (on the plain ``moto_server`` script about half the rounds
    had several winners), so these tests catch it rather than pass by luck.
    """

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": "1"}


@pytest.fixture(scope="module")
def spilling_moto() -> Iterator[MotoServer]:
    with SpillingMoto() as server:
        server.create_bucket(RACE_BUCKET)
        yield server


def s3_client(server: MotoServer) -> Any:
    """A client of its own (no retries, so each writer's outcome is its first answer)."""
    return boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def writers(spilling_moto: MotoServer) -> Iterator[list[Any]]:
    clients = [s3_client(spilling_moto) for _ in range(WRITERS)]
    yield clients
    for client in clients:
        client.close()


def race(writers: list[Any], write: Callable[[int, Any], object]) -> list[str]:
    """Run ``write(i, client)`` on every writer at once; "ok" or each error code."""
    start = threading.Barrier(len(writers))

    def attempt(index: int, client: Any) -> str:
        start.wait(timeout=30)
        try:
            write(index, client)
        except bx.ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "ok"

    with ThreadPoolExecutor(len(writers)) as pool:
        futures = [pool.submit(attempt, i, client) for i, client in enumerate(writers)]
        return [future.result(timeout=60) for future in futures]


def body_of(writer: int) -> bytes:
    return f"written by writer {writer}\n".encode()


def assert_one_winner(outcomes: list[str], client: Any, key: str) -> None:
    """Exactly one writer succeeded, every other got 412, and the key holds the winner's bytes."""
    assert sorted(set(outcomes)) == ["PreconditionFailed", "ok"], (key, outcomes)
    assert outcomes.count("ok") == 1, (key, outcomes)
    stored = client.get_object(Bucket=RACE_BUCKET, Key=key)["Body"].read()
    assert stored == body_of(outcomes.index("ok"))


def swap(index: int, client: Any, *, key: str, etag: str) -> None:
    client.put_object(Bucket=RACE_BUCKET, Key=key, Body=body_of(index), IfMatch=etag)


def create(index: int, client: Any, *, key: str) -> None:
    client.put_object(Bucket=RACE_BUCKET, Key=key, Body=body_of(index), IfNoneMatch="*")


def complete_create_only(
    index: int, client: Any, *, key: str, uploads: list[tuple[str, dict[str, Any]]]
) -> None:
    upload_id, part = uploads[index]
    client.complete_multipart_upload(
        Bucket=RACE_BUCKET,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [part]},
        IfNoneMatch="*",
    )


def start_one_part_upload(client: Any, key: str, body: bytes) -> tuple[str, dict[str, Any]]:
    """A multipart upload of ``body`` as its only part, ready to complete."""
    upload_id = client.create_multipart_upload(Bucket=RACE_BUCKET, Key=key)["UploadId"]
    answer = client.upload_part(
        Bucket=RACE_BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=body
    )
    return upload_id, {"PartNumber": 1, "ETag": answer["ETag"]}


def test_racing_puts_on_one_etag_have_exactly_one_winner(writers: list[Any]) -> None:
    for round_ in range(ROUNDS):
        key = f"if-match/{round_}-{uuid.uuid4().hex}"
        etag = writers[0].put_object(Bucket=RACE_BUCKET, Key=key, Body=b"seed")["ETag"]
        outcomes = race(writers, functools.partial(swap, key=key, etag=etag))
        assert_one_winner(outcomes, writers[0], key)


def test_racing_creates_of_one_key_have_exactly_one_winner(writers: list[Any]) -> None:
    for round_ in range(ROUNDS):
        key = f"if-none-match/{round_}-{uuid.uuid4().hex}"
        outcomes = race(writers, functools.partial(create, key=key))
        assert_one_winner(outcomes, writers[0], key)


def test_racing_create_only_multipart_completions_have_exactly_one_winner(
    writers: list[Any],
) -> None:
    for round_ in range(ROUNDS):
        key = f"multipart/{round_}-{uuid.uuid4().hex}"
        uploads = [start_one_part_upload(c, key, body_of(i)) for i, c in enumerate(writers)]
        outcomes = race(writers, functools.partial(complete_create_only, key=key, uploads=uploads))
        assert_one_winner(outcomes, writers[0], key)


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "STATE_BUCKET"),
        ({"STATE_BUCKET": "b", "S3_PART_SIZE": str(4 * MiB)}, "S3_PART_SIZE"),
        ({"STATE_BUCKET": "b", "S3_ADDRESSING_STYLE": "dns"}, "S3_ADDRESSING_STYLE"),
        ({"STATE_BUCKET": "b", "AWS_ENDPOINT_URL": "minio:9000"}, "AWS_ENDPOINT_URL"),
        ({"STATE_BUCKET": "b", "S3_PRESIGN_EXPIRES": "0"}, "S3_PRESIGN_EXPIRES"),
        ({"STATE_BUCKET": "b", "AWS_ACCESS_KEY_ID": "only-half"}, "AWS_SECRET_ACCESS_KEY"),
        ({"STATE_BUCKET": "b", "S3_PARTS_IN_FLIGHT": "0"}, "S3_PARTS_IN_FLIGHT"),
        ({"STATE_BUCKET": "b", "S3_TRANSFER_MEMORY": str(MiB)}, "S3_TRANSFER_MEMORY"),
    ],
)
def test_bad_configuration_names_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        S3Passthrough.from_settings(Settings(env))


# -- errors -------------------------------------------------------------------------


async def test_a_missing_bucket_is_unavailable_not_a_missing_file(moto_server: MotoServer) -> None:
    env = moto_server.connector_env("no-such-bucket-here")
    async with opened("s3-buffered-cas", env) as connector:
        with pytest.raises(BackendUnavailable, match="does not exist"):
            await connector.check_health()
        # HEAD answers carry no error code; reads and writes do.
        with pytest.raises(BackendUnavailable, match="does not exist"):
            await get(connector, "a.txt")
        with pytest.raises(BackendUnavailable, match="does not exist"):
            await put(connector, "a.txt", b"x")


async def test_refused_credentials_are_permission_denied() -> None:
    with MotoServer(enforce_auth=True) as strict:
        env = strict.connector_env("any-bucket")
        async with opened("s3-buffered-cas", env) as connector:
            with pytest.raises(PermissionDenied):
                await connector.check_health()
            with pytest.raises(PermissionDenied):
                await put(connector, "a.txt", b"x")


async def test_an_unreachable_endpoint_is_unavailable() -> None:
    env = {
        "STATE_BUCKET": "b",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "S3_MAX_ATTEMPTS": "1",
    }
    async with opened("s3-passthrough", env) as connector:
        with pytest.raises(BackendUnavailable):
            await connector.stat("a.txt")


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A listener that accepts connections and never answers."""
    with closing(socket.socket()) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


async def test_a_silent_endpoint_times_out(silent_endpoint: str) -> None:
    env = {
        "STATE_BUCKET": "b",
        "AWS_ENDPOINT_URL": silent_endpoint,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "S3_MAX_ATTEMPTS": "1",
        "S3_READ_TIMEOUT_SECONDS": "0.5",
    }
    async with opened("s3-buffered-lww", env) as connector:
        with pytest.raises(BackendTimeout):
            await connector.stat("a.txt")


class _SlowDown(BaseHTTPRequestHandler):
    """Answers every request the way a throttling S3 does."""

    seen = 0
    lock = threading.Lock()

    def _answer(self) -> None:
        with self.lock:
            type(self).seen += 1
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


async def test_throttling_is_retried_then_unavailable() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowDown)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {
        "STATE_BUCKET": "b",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}",
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "S3_MAX_ATTEMPTS": "3",
    }
    try:
        async with opened("s3-buffered-lww", env) as connector:
            _SlowDown.seen = 0
            with pytest.raises(BackendUnavailable, match="SlowDown"):
                await get(connector, "a.txt")
            assert _SlowDown.seen == 3
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("NoSuchKey", 404, NotFound),
        ("AccessDenied", 403, PermissionDenied),
        ("PreconditionFailed", 412, Conflict),
        ("ConditionalRequestConflict", 409, Conflict),
        ("EntityTooLarge", 400, TooLarge),
        ("SlowDown", 503, BackendUnavailable),
        ("InternalError", 500, BackendUnavailable),
        ("RequestTimeout", 400, BackendTimeout),
        ("SomethingNew", 502, BackendUnavailable),
        ("SomethingNew", 400, BackendError),
    ],
)
def test_error_table(code: str, status: int, expected: type[ConnectorError]) -> None:
    error = bx.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )
    mapped = map_s3_error(error, "k")
    assert type(mapped) is expected
    assert mapped.key == "k"


# -- memory -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("buckets")
async def test_a_256_mib_passthrough_upload_streams_in_bounded_connector_memory(
    moto_server: MotoServer, socket_dir: Path, prefix: str
) -> None:
    # Larger than the bound with room to spare, so holding the body would fail;
    # the benchmark streams 1 GiB.
    size = 256 * MiB
    env = env_for(moto_server, prefix)
    with ConnectorProcess("s3-passthrough", socket_dir / "s3-big.sock", env) as process:
        client = HttpConnector(process.socket_path)
        await client.open()
        try:
            with PeakRss(process.pid) as rss:
                meta = await client.write("weights.bin", pattern_body(size), size=None)
            assert (meta.size, (await client.stat("weights.bin")).size) == (size, size)
            await client.delete("weights.bin")
        finally:
            await client.close()
    # S3 reports md5(md5(part 1) + md5(part 2) + ...)-N for a multipart object,
    # so the ETag vouches for every byte. The pattern repeats every 32 bytes,
    # so all 32 parts of 8 MiB are the same.
    part = b"".join([c async for c in pattern_body(8 * MiB)])
    expected = hashlib.md5(hashlib.md5(part).digest() * 32).hexdigest() + "-32"
    assert meta.etag == expected
    assert rss.peak < 150 * MiB, f"connector peaked at {rss.peak / MiB:.0f} MiB for 256 MiB"
