"""Foreign keys for the backends the suites run on: other actors' objects in the same store.

A platform runs many actors against one Redis database, one NATS bucket, one
S3 or GCS bucket. Each ``crowd_*`` function stores ``count`` objects of
other mounts (laid out as their connectors would store them) beside the
mount under test, in bulk: pipelines on Redis, pipelined publishes on NATS,
threads for the object stores. Some names are chosen to sort right next to
the suite's own prefix (``conformance-x``, ``conformance.x``,
``conformance0``) so that a listing or a directory check that matches names
textually rather than by directory would pick them up.

Must not: write under the prefix of a mount under test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterator
from pathlib import Path

# Other mounts' prefixes; the last three sort right after "conformance/"'s siblings.
BULK_PREFIX = "other-actor/"
NEIGHBOURS = ("conformance-x/", "conformance.x/", "conformance0/")


def foreign_names(count: int) -> Iterator[tuple[str, str]]:
    """``count`` (mount prefix, key) pairs: mostly one bulk mount, a few next to ``conformance/``."""
    for neighbour in NEIGHBOURS:
        yield neighbour, "d/file.txt"
        yield neighbour, "file.txt"
    for i in range(count - 2 * len(NEIGHBOURS)):
        yield BULK_PREFIX, f"sessions/s{i % 100:02d}/k{i:07d}.json"


def crowd_redis(url: str, count: int) -> None:
    """Objects of other mounts in the connector's layout: value, metadata hash, name index."""
    import redis

    from asya_state_connectors.backends import redis_scripts as lua

    client = redis.Redis.from_url(url)
    try:
        pipe = client.pipeline(transaction=False)
        for n, (prefix, key) in enumerate(foreign_names(count), 1):
            data = (prefix + key).encode()
            pipe.set(data, b"{}")
            pipe.hset(data + lua.META_SUFFIX, mapping={"etag": "e", "size": 2, "mtime": "1.0"})
            pipe.zadd(prefix.encode() + lua.INDEX_SUFFIX, {key.encode(): 0, lua.COMPLETE: 0})
            if n % 5000 == 0:
                pipe.execute()
        pipe.execute()
    finally:
        client.close()


def crowd_nats(url: str, bucket: str, count: int) -> None:
    """Entries of other mounts in ``bucket`` (created if missing), as the connector encodes keys."""
    import nats
    from nats.js import api

    from asya_state_connectors.backends.nats_keys import encode_key

    async def fill() -> None:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            try:
                await js.stream_info(f"KV_{bucket}")
            except nats.js.errors.NotFoundError:
                await js.create_key_value(api.KeyValueConfig(bucket=bucket, history=1, direct=True))
            gate = asyncio.Semaphore(512)

            async def one(prefix: str, key: str) -> None:
                async with gate:
                    await js.publish(f"$KV.{bucket}.{encode_key(prefix + key)}", b"{}")

            await asyncio.gather(*(one(p, k) for p, k in foreign_names(count)))
        finally:
            await nc.close()

    # A thread of its own: the fixture may be set up while a test's event loop runs.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(lambda: asyncio.run(fill())).result()


def crowd_directory(root: Path, count: int) -> None:
    """Files of other mounts beside the local-directory connector's own."""
    for prefix, key in foreign_names(count):
        path = root / prefix / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"{}")


def _in_threads(put: Callable[[str], object], count: int) -> None:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in pool.map(put, (p + k for p, k in foreign_names(count))):
            pass


def crowd_s3(env: dict[str, str], count: int) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    bucket = env["STATE_BUCKET"]
    try:
        _in_threads(lambda name: client.put_object(Bucket=bucket, Key=name, Body=b"{}"), count)
    finally:
        client.close()


def crowd_gcs(env: dict[str, str], count: int) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project=env["GCS_PROJECT"],
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": env["STORAGE_EMULATOR_HOST"]},
    )
    bucket = client.bucket(env["STATE_BUCKET"])
    _in_threads(lambda name: bucket.blob(name).upload_from_string(b"{}"), count)
