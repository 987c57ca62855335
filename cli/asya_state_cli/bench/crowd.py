"""Foreign keys: other actors' objects in the store a benchmark or test suite runs on.

A platform runs many actors against one Redis database, one NATS bucket, one
S3 or GCS bucket. Each ``crowd_*`` function stores objects ``start`` to
``stop`` of a fixed sequence of other mounts' objects (laid out as their
connectors would store them), in bulk: pipelines on Redis, pipelined
publishes on NATS, threads for the object stores; calling it again with the
next range grows the crowd. The first few names sort right next to the test
suite's prefix (``conformance-x/``, ``conformance.x/``, ``conformance0/``)
so that a listing or a directory check that matches names textually rather
than by directory would pick them up.

Must not: write under ``bench-`` or ``conformance/`` (the mounts measured or
tested), or import a backend client before its function is called.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

# Other mounts' prefixes; the last three sort right after "conformance/"'s siblings.
BULK_PREFIX = "other-actor/"
NEIGHBOURS = ("conformance-x/", "conformance.x/", "conformance0/")


def foreign_names(start: int, stop: int) -> Iterator[tuple[str, str]]:
    """(mount prefix, key) pairs ``start`` to ``stop`` of the sequence: a few next to
    ``conformance/``, then one bulk mount's sessions in 100 directories."""
    near = [(n, key) for n in NEIGHBOURS for key in ("d/file.txt", "file.txt")]
    for i in range(start, stop):
        if i < len(near):
            yield near[i]
        else:
            yield BULK_PREFIX, f"sessions/s{i % 100:02d}/k{i:07d}.json"


# Stores one object per name in ARGV (after the first, the mount's root) as
# the connector would: value, metadata hash, name in the mount's index.
_STORE_OBJECTS = """
local root = ARGV[1]
for i = 2, #ARGV do
  local data = root .. ARGV[i]
  redis.call('SET', data, '{}')
  redis.call('HSET', data .. '\\0meta', 'etag', 'e', 'size', 2, 'mtime', '1.0')
  redis.call('ZADD', root .. '\\0names', 0, ARGV[i], 0, '')
end
return #ARGV - 1
"""
BATCH = 5000


def _batches(start: int, stop: int) -> Iterator[dict[str, list[str]]]:
    """Names grouped by mount prefix, BATCH at a time."""
    batch: dict[str, list[str]] = {}
    for n, (prefix, key) in enumerate(foreign_names(start, stop), 1):
        batch.setdefault(prefix, []).append(key)
        if n % BATCH == 0:
            yield batch
            batch = {}
    if batch:
        yield batch


def crowd_redis(url: str, start: int, stop: int) -> None:
    """Objects of other mounts in the connector's layout: value, metadata hash, name index.

    A script stores each batch inside Redis (a few microseconds an object),
    so a million take seconds rather than minutes of client-side packing.
    """
    import redis

    client = redis.Redis.from_url(url)
    try:
        store = client.register_script(_STORE_OBJECTS)
        for batch in _batches(start, stop):
            for prefix, keys in batch.items():
                store(keys=[], args=[prefix, *keys])
    finally:
        client.close()


def crowd_nats(url: str, bucket: str, start: int, stop: int, replicas: int = 1) -> None:
    """Entries of other mounts in ``bucket`` (created with ``replicas`` if missing), as the connector encodes keys.

    ``url`` may list a cluster's servers, comma-separated.

    Published without waiting for each acknowledgement, a batch at a time,
    then confirmed from the stream's message count (the names are new, so
    each adds one message).
    """
    import nats
    from nats.js import api

    from asya_state_connectors.backends.nats_kv.key_encoding import encode_key

    async def fill() -> None:
        nc = await nats.connect(servers=url.split(","))
        try:
            js = nc.jetstream()
            stream = f"KV_{bucket}"
            try:
                before = (await js.stream_info(stream)).state.messages
            except nats.js.errors.NotFoundError:
                await js.create_key_value(
                    api.KeyValueConfig(bucket=bucket, history=1, direct=True, replicas=replicas)
                )
                before = 0
            for batch in _batches(start, stop):
                for prefix, keys in batch.items():
                    for key in keys:
                        await nc.publish(f"$KV.{bucket}.{encode_key(prefix + key)}", b"{}")
                await nc.flush()
            expected = before + (stop - start)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while (stored := (await js.stream_info(stream)).state.messages) < expected:
                if loop.time() > deadline:
                    raise RuntimeError(f"NATS stored {stored} of {expected} messages in {bucket}")
                await asyncio.sleep(0.05)
        finally:
            await nc.close()

    # A thread of its own: the fixture may be set up while a test's event loop runs.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(lambda: asyncio.run(fill())).result()


def crowd_directory(root: Path, start: int, stop: int) -> None:
    """Files of other mounts beside the local-directory connector's own."""
    for prefix, key in foreign_names(start, stop):
        path = root / prefix / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"{}")
    # Written back now, not while the next measurement runs.
    os.sync()


def _in_threads(put: Callable[[str], object], start: int, stop: int) -> None:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in pool.map(put, (p + k for p, k in foreign_names(start, stop))):
            pass


def crowd_s3(env: Mapping[str, str], bucket: str, start: int, stop: int) -> None:
    """Objects in ``bucket`` of the S3 endpoint a connector environment names."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    try:
        _in_threads(
            lambda name: client.put_object(Bucket=bucket, Key=name, Body=b"{}"), start, stop
        )
    finally:
        client.close()


def crowd_gcs(env: Mapping[str, str], bucket: str, start: int, stop: int) -> None:
    """Objects in ``bucket`` of the GCS endpoint a connector environment names."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project=env["GCS_PROJECT"],
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": env["STORAGE_EMULATOR_HOST"]},
    )
    target = client.bucket(bucket)
    _in_threads(lambda name: target.blob(name).upload_from_string(b"{}"), start, stop)
