"""The ways a workload reaches its data, inside the benchmark's handler process.

Owns: ``FileStore`` (plain Python file I/O under a root directory: on a
state mount that is the full path through the runtime and a connector, on a
local directory it is the direct baseline for ``fs``) and one store per
backend client used directly (redis-py, nats-py, boto3,
google-cloud-storage), each timing its own operations the way that client
is meant to be driven (nats-py inside its event loop), and the model of
upstream's runtime (``bench.upstream``) for missing keys. Logical keys use
``/``; a store maps them onto its backend's key syntax.

Must not: import a backend client before that store is asked for (the
handler process stands in for an actor image), or start servers.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

# Large objects move in blocks of this size on every path.
LARGE_BLOCK = 1024 * 1024


class BenchError(RuntimeError):
    """A workload produced a wrong answer; timings of a wrong answer are worthless."""


def _blocks(size: int, block: bytes) -> Iterator[bytes]:
    left = size
    while left > 0:
        piece = block if left >= len(block) else block[:left]
        left -= len(piece)
        yield piece


class Store(ABC):
    """One way to reach the data; every operation raises on a wrong answer."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def read(self, key: str) -> bytes: ...

    @abstractmethod
    def stat(self, key: str) -> int:
        """The object's size."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def listdir(self, directory: str) -> list[str]:
        """Names directly under ``directory`` (no trailing slash)."""

    @abstractmethod
    def write_large(self, key: str, size: int, block: bytes) -> None: ...

    @abstractmethod
    def read_large(self, key: str) -> int:
        """Read the whole object in LARGE_BLOCK pieces; returns the byte count."""

    @abstractmethod
    def remove(self, key: str) -> None: ...

    def prepare_dir(self, directory: str) -> None:  # noqa: B027 (only local directories need it)
        """Make ``directory`` usable for writes."""

    def stat_missing(self, key: str) -> None:
        """Stat ``key``, which was never stored, the way this store's users would; raise if found."""
        raise BenchError(f"{type(self).__name__} does not measure a missing key's stat")

    def open_missing(self, key: str) -> None:
        """Open ``key``, which was never stored, for reading; raise if it opens."""
        raise BenchError(f"{type(self).__name__} does not measure a missing key's open")

    def operation(self, op: str, size: int) -> Callable[[str], object]:
        """A one-argument callable for ``op``; reads check the size they got."""
        payload = os.urandom(size)

        def write(key: str) -> None:
            self.write(key, payload)

        def read(key: str) -> None:
            got = len(self.read(key))
            if got != size:
                raise BenchError(f"read {key!r}: {got} bytes, expected {size}")

        def stat(key: str) -> None:
            got = self.stat(key)
            if got != size:
                raise BenchError(f"stat {key!r}: size {got}, expected {size}")

        def exists(key: str) -> None:
            if not self.exists(key):
                raise BenchError(f"exists {key!r}: False for a stored key")

        def missing(key: str) -> None:
            if self.exists(key):
                raise BenchError(f"exists {key!r}: True for a key never stored")

        def listdir(directory: str) -> None:
            if not self.listdir(directory):
                raise BenchError(f"listdir {directory!r}: empty")

        operations: dict[str, Callable[[str], None]] = {
            "write": write,
            "read": read,
            "stat": stat,
            "exists": exists,
            "missing": missing,
            "stat_missing": self.stat_missing,
            "open_missing": self.open_missing,
            "listdir": listdir,
        }
        try:
            return operations[op]
        except KeyError:
            raise BenchError(f"unknown operation {op!r}") from None

    def timed(self, op: str, keys: list[str], size: int) -> list[int]:
        """Nanoseconds of each operation, one key after another."""
        call = self.operation(op, size)
        samples: list[int] = []
        clock = time.perf_counter_ns
        for key in keys:
            start = clock()
            call(key)
            samples.append(clock() - start)
        return samples

    def concurrent(self, op: str, keys: list[str], size: int, threads: int) -> float:
        """Seconds for ``threads`` threads to run ``op`` once per key between them."""
        call = self.operation(op, size)
        share = [keys[i::threads] for i in range(threads)]
        barrier = threading.Barrier(threads + 1)
        failures: list[BaseException] = []

        def work(mine: list[str]) -> None:
            barrier.wait()
            try:
                for key in mine:
                    call(key)
            except BaseException as exc:
                failures.append(exc)

        workers = [threading.Thread(target=work, args=(part,)) for part in share]
        for worker in workers:
            worker.start()
        barrier.wait()
        start = time.perf_counter()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
        if failures:
            raise failures[0]
        return elapsed


class FileStore(Store):
    """Plain file I/O under ``root``: a state mount (the proxy path) or a local directory."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def prepare_dir(self, directory: str) -> None:
        # On a state mount this is accepted and stores nothing, as for any handler.
        os.makedirs(self._path(directory), exist_ok=True)

    def write(self, key: str, data: bytes) -> None:
        with open(self._path(key), "wb") as file:
            file.write(data)

    def read(self, key: str) -> bytes:
        with open(self._path(key), "rb") as file:
            return file.read()

    def stat(self, key: str) -> int:
        return os.stat(self._path(key)).st_size

    def exists(self, key: str) -> bool:
        return os.path.exists(self._path(key))

    def listdir(self, directory: str) -> list[str]:
        return os.listdir(self._path(directory))

    def stat_missing(self, key: str) -> None:
        try:
            os.stat(self._path(key))
        except FileNotFoundError:
            return
        raise BenchError(f"os.stat {key!r}: found a key never stored")

    def open_missing(self, key: str) -> None:
        try:
            open(self._path(key), "rb").close()
        except FileNotFoundError:
            return
        raise BenchError(f"open {key!r}: opened a key never stored")

    def write_large(self, key: str, size: int, block: bytes) -> None:
        with open(self._path(key), "wb") as file:
            for piece in _blocks(size, block):
                file.write(piece)

    def read_large(self, key: str) -> int:
        view = memoryview(bytearray(LARGE_BLOCK))
        total = 0
        with open(self._path(key), "rb") as file:
            while count := file.readinto(view):
                total += count
        return total

    def remove(self, key: str) -> None:
        os.remove(self._path(key))


class RedisStore(Store):
    """redis-py, one connection pool; ``prefix`` keeps its keys apart from the connector's."""

    def __init__(self, url: str, prefix: str, *, cluster: bool = False) -> None:
        import redis

        self._client: Any = (
            redis.RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)
        )
        self._prefix = prefix

    def _key(self, key: str) -> str:
        return self._prefix + key

    def write(self, key: str, data: bytes) -> None:
        self._client.set(self._key(key), data)

    def read(self, key: str) -> bytes:
        value = self._client.get(self._key(key))
        if value is None:
            raise BenchError(f"redis key {key!r} is missing")
        return bytes(value)

    def stat(self, key: str) -> int:
        return int(self._client.strlen(self._key(key)))

    def exists(self, key: str) -> bool:
        return bool(self._client.exists(self._key(key)))

    def listdir(self, directory: str) -> list[str]:
        start = self._key(directory + "/")
        return [
            name.decode()[len(start) :]
            for name in self._client.scan_iter(match=start + "*", count=1000)
        ]

    def write_large(self, key: str, size: int, block: bytes) -> None:
        # redis-py sends one value from memory: that is how the client works.
        self._client.set(self._key(key), b"".join(_blocks(size, block)))

    def read_large(self, key: str) -> int:
        return len(self.read(key))

    def remove(self, key: str) -> None:
        self._client.delete(self._key(key))


class NatsStore(Store):
    """nats-py's JetStream key-value API, timed inside its own event loop."""

    def __init__(self, url: str, bucket: str, replicas: int = 1) -> None:
        import nats

        self._loop = asyncio.new_event_loop()
        # A cluster's servers come comma-separated, as NATS_URL takes them.
        self._nc: Any = self._run(nats.connect(servers=url.split(",")))
        self._js: Any = self._nc.jetstream()
        self._kv: Any = self._run(self._js.create_key_value(bucket=bucket, replicas=replicas))
        self._subjects = f"$KV.{bucket}."
        # The client's background tasks must end before the interpreter does.
        atexit.register(self._close)

    def _close(self) -> None:
        self._run(self._nc.close())
        self._loop.close()

    def _run(self, coroutine: Awaitable[Any]) -> Any:
        return self._loop.run_until_complete(coroutine)

    @staticmethod
    def _key(key: str) -> str:
        # NATS wildcards match whole tokens, so directories become '.' tokens.
        return key.replace("/", ".")

    async def _write(self, key: str, data: bytes) -> None:
        await self._kv.put(self._key(key), data)

    async def _read(self, key: str) -> bytes:
        entry = await self._kv.get(self._key(key))
        return bytes(entry.value or b"")

    async def _exists(self, key: str) -> bool:
        from nats.js.errors import KeyNotFoundError

        try:
            await self._kv.get(self._key(key))
        except KeyNotFoundError:
            return False
        return True

    async def _listdir(self, directory: str) -> list[str]:
        # The newest entry per key, headers only, read until the consumer says
        # nothing is pending. Not kv.watch(): nats-py can emit its end-of-replay
        # marker before messages already in flight (nats-io/nats.py#842), which
        # makes a listing come back short or empty now and then.
        from nats.js.api import DeliverPolicy

        start = self._subjects + self._key(directory) + "."
        sub = await self._js.subscribe(
            start + ">",
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            headers_only=True,
        )
        names: list[str] = []
        try:
            info = await sub.consumer_info()
            pending = info.num_pending or info.delivered.consumer_seq
            while pending:
                msg = await sub.next_msg(timeout=10)
                pending = msg.metadata.num_pending
                if (msg.headers or {}).get("KV-Operation") in (None, "PUT"):
                    names.append(msg.subject[len(start) :])
        finally:
            await sub.unsubscribe()
        return names

    def write(self, key: str, data: bytes) -> None:
        self._run(self._write(key, data))

    def read(self, key: str) -> bytes:
        data: bytes = self._run(self._read(key))
        return data

    def stat(self, key: str) -> int:
        return len(self.read(key))

    def exists(self, key: str) -> bool:
        found: bool = self._run(self._exists(key))
        return found

    def listdir(self, directory: str) -> list[str]:
        names: list[str] = self._run(self._listdir(directory))
        return names

    def write_large(self, key: str, size: int, block: bytes) -> None:
        raise BenchError("NATS KV values are limited by max_payload; no large workload")

    def read_large(self, key: str) -> int:
        raise BenchError("NATS KV values are limited by max_payload; no large workload")

    def remove(self, key: str) -> None:
        self._run(self._kv.delete(self._key(key)))

    def _async_operation(self, op: str, size: int) -> Callable[[str], Awaitable[None]]:
        payload = os.urandom(size)

        async def write(key: str) -> None:
            await self._write(key, payload)

        async def read(key: str) -> None:
            if len(await self._read(key)) != size:
                raise BenchError(f"read {key!r}: wrong size")

        async def exists(key: str) -> None:
            if not await self._exists(key):
                raise BenchError(f"exists {key!r}: False for a stored key")

        async def missing(key: str) -> None:
            if await self._exists(key):
                raise BenchError(f"exists {key!r}: True for a key never stored")

        async def listdir(directory: str) -> None:
            if not await self._listdir(directory):
                raise BenchError(f"listdir {directory!r}: empty")

        operations: dict[str, Callable[[str], Awaitable[None]]] = {
            "write": write,
            "read": read,
            "stat": read,  # a KV entry's size comes with its value
            "exists": exists,
            "missing": missing,
            "listdir": listdir,
        }
        return operations[op]

    def timed(self, op: str, keys: list[str], size: int) -> list[int]:
        call = self._async_operation(op, size)

        async def run() -> list[int]:
            samples: list[int] = []
            clock = time.perf_counter_ns
            for key in keys:
                start = clock()
                await call(key)
                samples.append(clock() - start)
            return samples

        samples: list[int] = self._run(run())
        return samples

    def concurrent(self, op: str, keys: list[str], size: int, threads: int) -> float:
        """``threads`` concurrent tasks: the client's own form of concurrency."""
        call = self._async_operation(op, size)

        async def work(mine: list[str]) -> None:
            for key in mine:
                await call(key)

        async def run() -> float:
            start = time.perf_counter()
            await asyncio.gather(*(work(keys[i::threads]) for i in range(threads)))
            return time.perf_counter() - start

        elapsed: float = self._run(run())
        return elapsed


class _BlockReader:
    """A file-like source of ``size`` bytes made of repeated blocks, for upload APIs."""

    def __init__(self, size: int, block: bytes) -> None:
        self._pieces = _blocks(size, block)
        self._pending = b""
        self._position = 0

    def tell(self) -> int:
        return self._position

    def read(self, count: int = -1) -> bytes:
        parts = [self._pending]
        have = len(self._pending)
        while count < 0 or have < count:
            piece = next(self._pieces, b"")
            if not piece:
                break
            parts.append(piece)
            have += len(piece)
        data = b"".join(parts)
        if 0 <= count < len(data):
            data, self._pending = data[:count], data[count:]
        else:
            self._pending = b""
        self._position += len(data)
        return data


class S3Store(Store):
    """boto3's S3 client against one bucket."""

    def __init__(self, config: Mapping[str, str]) -> None:
        import boto3

        self._client: Any = boto3.client(
            "s3",
            endpoint_url=config["endpoint"],
            region_name=config["region"],
            aws_access_key_id=config["access_key"],
            aws_secret_access_key=config["secret_key"],
        )
        self._bucket = config["bucket"]

    def write(self, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=self._bucket, Key=key, Body=data)

    def read(self, key: str) -> bytes:
        body = self._client.get_object(Bucket=self._bucket, Key=key)["Body"]
        data: bytes = body.read()
        return data

    def stat(self, key: str) -> int:
        return int(self._client.head_object(Bucket=self._bucket, Key=key)["ContentLength"])

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def stat_missing(self, key: str) -> None:
        if self.exists(key):  # one HeadObject
            raise BenchError(f"head_object {key!r}: found a key never stored")

    def open_missing(self, key: str) -> None:
        try:
            self._client.get_object(Bucket=self._bucket, Key=key)
        except self._client.exceptions.NoSuchKey:
            return
        raise BenchError(f"get_object {key!r}: found a key never stored")

    def listdir(self, directory: str) -> list[str]:
        prefix = directory + "/"
        names: list[str] = []
        for page in self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=prefix, Delimiter="/"
        ):
            names += [item["Key"][len(prefix) :] for item in page.get("Contents", [])]
        return names

    def write_large(self, key: str, size: int, block: bytes) -> None:
        self._client.upload_fileobj(_BlockReader(size, block), self._bucket, key)

    def read_large(self, key: str) -> int:
        body = self._client.get_object(Bucket=self._bucket, Key=key)["Body"]
        return sum(len(chunk) for chunk in body.iter_chunks(LARGE_BLOCK))

    def remove(self, key: str) -> None:
        self._client.delete_object(Bucket=self._bucket, Key=key)


class _CountingSink:
    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)


class GcsStore(Store):
    """google-cloud-storage against one bucket at an explicit endpoint."""

    def __init__(self, config: Mapping[str, str]) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(
            project=config["project"],
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": config["endpoint"]},
        )
        self._bucket: Any = client.bucket(config["bucket"])

    def write(self, key: str, data: bytes) -> None:
        self._bucket.blob(key).upload_from_string(data)

    def read(self, key: str) -> bytes:
        data: bytes = self._bucket.blob(key).download_as_bytes()
        return data

    def stat(self, key: str) -> int:
        blob = self._bucket.get_blob(key)
        if blob is None:
            raise BenchError(f"gcs object {key!r} is missing")
        return int(blob.size)

    def exists(self, key: str) -> bool:
        return bool(self._bucket.blob(key).exists())

    def stat_missing(self, key: str) -> None:
        if self._bucket.get_blob(key) is not None:  # one metadata get
            raise BenchError(f"get_blob {key!r}: found a key never stored")

    def open_missing(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._bucket.blob(key).download_as_bytes()
        except NotFound:
            return
        raise BenchError(f"download {key!r}: found a key never stored")

    def listdir(self, directory: str) -> list[str]:
        prefix = directory + "/"
        return [
            blob.name[len(prefix) :]
            for blob in self._bucket.client.list_blobs(self._bucket, prefix=prefix, delimiter="/")
        ]

    def write_large(self, key: str, size: int, block: bytes) -> None:
        self._bucket.blob(key, chunk_size=8 * LARGE_BLOCK).upload_from_file(
            _BlockReader(size, block), size=size
        )

    def read_large(self, key: str) -> int:
        sink = _CountingSink()
        self._bucket.blob(key, chunk_size=8 * LARGE_BLOCK).download_to_file(sink)
        return sink.count

    def remove(self, key: str) -> None:
        self._bucket.blob(key).delete()


class UpstreamStore(Store):
    """The model of upstream's runtime (``bench.upstream``): a new connection per operation.

    Only the missing-key operations are measured through it: ``exists`` and
    ``os.stat`` are one HEAD (upstream's ``exists`` is its stat), ``open``
    one GET.
    """

    def __init__(self, socket_path: str) -> None:
        from .upstream import upstream_request

        self._socket = socket_path
        self._request = upstream_request

    def _status(self, method: str, key: str) -> int:
        status, _ = self._request(self._socket, method, key)
        if status not in (200, 204, 404):
            raise BenchError(f"the upstream model answered {method} {key!r} with {status}")
        return status

    def exists(self, key: str) -> bool:
        return self._status("HEAD", key) != 404

    def stat_missing(self, key: str) -> None:
        if self.exists(key):
            raise BenchError(f"HEAD {key!r}: found a key never stored")

    def open_missing(self, key: str) -> None:
        if self._status("GET", key) != 404:
            raise BenchError(f"GET {key!r}: found a key never stored")

    def _unmeasured(self) -> BenchError:
        return BenchError("the upstream model measures only missing keys")

    def write(self, key: str, data: bytes) -> None:
        raise self._unmeasured()

    def read(self, key: str) -> bytes:
        raise self._unmeasured()

    def stat(self, key: str) -> int:
        raise self._unmeasured()

    def listdir(self, directory: str) -> list[str]:
        raise self._unmeasured()

    def write_large(self, key: str, size: int, block: bytes) -> None:
        raise self._unmeasured()

    def read_large(self, key: str) -> int:
        raise self._unmeasured()

    def remove(self, key: str) -> None:
        raise self._unmeasured()


def make_store(config: Mapping[str, str]) -> Store:
    """The store a handler message describes (``kind`` plus that kind's settings)."""
    kind = config.get("kind")
    if kind == "files":
        return FileStore(config["root"])
    if kind in ("redis", "redis-cluster"):
        return RedisStore(config["url"], config["prefix"], cluster=kind == "redis-cluster")
    if kind == "nats":
        return NatsStore(config["url"], config["bucket"], int(config.get("replicas", "1")))
    if kind == "s3":
        return S3Store(config)
    if kind == "gcs":
        return GcsStore(config)
    if kind == "upstream":
        return UpstreamStore(config["socket"])
    raise BenchError(f"unknown store kind {kind!r}")
