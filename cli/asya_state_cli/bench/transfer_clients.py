"""The libraries' own large-object transfers, run inside the benchmark's handler process.

Owns: what ``asya-state bench --transfer`` compares the file API with, at the
same concurrency and part size on the same shaped endpoint: boto3's transfer
manager (s3transfer, threads) and google-cloud-storage's ``transfer_manager``
(sliced downloads into a file, XML multipart uploads), each also with one
stream (concurrency 1: what one connection delivers); and the time to the
first byte of a read through the file API and through one plain GET.

fake-gcs-server does not serve XML multipart uploads (it answers
``POST /<bucket>/<object>?uploads`` with 400 "invalid uploadType", or 404
when the object name has a ``/``), so when ``upload_chunks_concurrently`` is
refused so, the GCS write stands in with
the library's parallel composite upload, as gsutil and gcloud do it: one
slice per worker uploaded at once as its own object, one compose, the slices
deleted; the answer names the stand-in.

Must not: aggregate or judge numbers, or import a backend client at module
import (the handler process imports this for every task).
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .stores import LARGE_BLOCK, BenchError, _BlockReader


def _s3_client(config: Mapping[str, Any]) -> Any:
    import boto3
    import botocore.config

    return boto3.client(
        "s3",
        endpoint_url=config["endpoint"],
        region_name=config["region"],
        aws_access_key_id=config["access_key"],
        aws_secret_access_key=config["secret_key"],
        config=botocore.config.Config(max_pool_connections=int(config["concurrency"]) + 2),
    )


def _gcs_bucket(config: Mapping[str, Any]) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project=config["project"],
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": config["endpoint"]},
    )
    return client.bucket(config["bucket"])


def s3_transfer(config: Mapping[str, Any], kind: str, key: str, size: int, block: bytes) -> float:
    """Seconds for boto3's transfer manager to write or read ``key`` (``size`` bytes)."""
    from boto3.s3.transfer import TransferConfig

    client = _s3_client(config)
    part = int(config["part_size"])
    settings = TransferConfig(
        multipart_threshold=part,
        multipart_chunksize=part,
        max_concurrency=int(config["concurrency"]),
        use_threads=int(config["concurrency"]) > 1,
    )
    try:
        start = time.perf_counter()
        if kind == "write":
            client.upload_fileobj(_BlockReader(size, block), config["bucket"], key, Config=settings)
        else:
            sink = _Sink()
            client.download_fileobj(config["bucket"], key, sink, Config=settings)
            if sink.count != size:
                raise BenchError(f"read {sink.count} bytes of {key!r}, expected {size}")
        return time.perf_counter() - start
    finally:
        client.close()


COMPOSITE_NOTE = (
    "stand-in: parallel composite upload (one slice per worker, then compose); "
    "fake-gcs-server answers transfer_manager's XML multipart POST ?uploads with 400/404"
)


def gcs_transfer(
    config: Mapping[str, Any], kind: str, key: str, size: int, block: bytes
) -> tuple[float, str]:
    """Seconds for google-cloud-storage to write or read ``key``, and which stand-in ran if any.

    transfer_manager at concurrency above 1, one stream otherwise.
    """
    from google.cloud.storage import transfer_manager
    from google.resumable_media.common import InvalidResponse

    bucket = _gcs_bucket(config)
    part = int(config["part_size"])
    workers = int(config["concurrency"])
    blob = bucket.blob(key, chunk_size=part)
    with tempfile.TemporaryDirectory(prefix="asya-bench-gcs-") as scratch:
        path = os.path.join(scratch, "object.bin")
        if kind == "write" and workers > 1:
            # transfer_manager uploads from a file: writing it is not timed.
            with open(path, "wb") as file:
                reader = _BlockReader(size, block)
                while piece := reader.read(LARGE_BLOCK):
                    file.write(piece)
        start = time.perf_counter()
        if kind == "write" and workers > 1:
            try:
                transfer_manager.upload_chunks_concurrently(
                    path,
                    blob,
                    chunk_size=part,
                    max_workers=workers,
                    worker_type=transfer_manager.THREAD,
                )
            except InvalidResponse as exc:
                if exc.response.status_code not in (400, 404):
                    raise
                start = time.perf_counter()
                _composite_upload(bucket, key, path, size, part, workers)
                return time.perf_counter() - start, COMPOSITE_NOTE
        elif kind == "write":
            blob.upload_from_file(_BlockReader(size, block), size=size)
        elif workers > 1:
            blob.reload()
            # The emulator's media link names its own address: without it the
            # slices are fetched through the endpoint given, the shaped link.
            blob._properties.pop("mediaLink", None)
            transfer_manager.download_chunks_concurrently(
                blob,
                path,
                chunk_size=part,
                max_workers=workers,
                worker_type=transfer_manager.THREAD,
            )
            if os.path.getsize(path) != size:
                raise BenchError(f"read {os.path.getsize(path)} bytes of {key!r}, expected {size}")
        else:
            sink = _Sink()
            blob.download_to_file(sink)
            if sink.count != size:
                raise BenchError(f"read {sink.count} bytes of {key!r}, expected {size}")
        return time.perf_counter() - start, ""


def _composite_upload(bucket: Any, key: str, path: str, size: int, part: int, workers: int) -> None:
    """Upload ``path`` as ``key``: ``workers`` slices at once as objects, one compose, slices deleted."""
    step = -(-size // workers)
    names = [f"{key}.slice-{number}" for number in range(workers) if number * step < size]

    def upload(number: int) -> None:
        offset = number * step
        length = min(step, size - offset)
        with _FileSlice(path, offset, length) as piece:
            bucket.blob(names[number], chunk_size=part).upload_from_file(piece, size=length)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(upload, range(len(names))))
    bucket.blob(key).compose([bucket.blob(name) for name in names])
    for name in names:
        bucket.blob(name).delete()


def first_byte_of_file(path: str) -> float:
    """Seconds from ``open`` to the first byte of ``path`` through the file API."""
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as file:
        if not file.read(1):
            raise BenchError(f"{path} is empty")
        return time.perf_counter() - start


def first_byte_direct(config: Mapping[str, Any], key: str) -> float:
    """Seconds from sending one GET to its first body byte, with the backend's own client."""
    if config["kind"] == "s3":
        client = _s3_client(config)
        try:
            start = time.perf_counter()
            body = client.get_object(Bucket=config["bucket"], Key=key)["Body"]
            body.read(1)
            seconds = time.perf_counter() - start
            body.close()
            return seconds
        finally:
            client.close()
    bucket = _gcs_bucket(config)
    blob = bucket.blob(key)
    start = time.perf_counter()
    with blob.open("rb", chunk_size=LARGE_BLOCK) as file:
        file.read(1)
        return time.perf_counter() - start


def remove_direct(config: Mapping[str, Any], key: str) -> None:
    if config["kind"] == "s3":
        client = _s3_client(config)
        try:
            client.delete_object(Bucket=config["bucket"], Key=key)
        finally:
            client.close()
    else:
        _gcs_bucket(config).blob(key).delete()


class _FileSlice(io.RawIOBase):
    """``length`` bytes of ``path`` from ``offset``, as a file of their own (resumable uploads
    start from position 0 and may seek back to retry a chunk)."""

    def __init__(self, path: str, offset: int, length: int) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._offset = offset
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._length - self._pos)
        if want <= 0:
            return 0
        self._file.seek(self._offset + self._pos)
        count = self._file.readinto(view[:want])
        self._pos += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._file.close()
        super().close()


class _Sink:
    """A write-only file that counts what it is given (download_fileobj seeks never)."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)


def run_task(payload: Mapping[str, Any], block: bytes) -> dict[str, Any]:
    task = payload["task"]
    if task == "transfer_direct":
        config = payload["client"]
        arguments = (config, payload["kind"], payload["key"], payload["size"], block)
        if config["kind"] == "s3":
            return {"seconds": s3_transfer(*arguments), "note": ""}
        seconds, note = gcs_transfer(*arguments)
        return {"seconds": seconds, "note": note}
    if task == "transfer_first_byte":
        if "path" in payload:
            return {"seconds": first_byte_of_file(payload["path"])}
        return {"seconds": first_byte_direct(payload["client"], payload["key"])}
    if task == "transfer_remove":
        remove_direct(payload["client"], payload["key"])
        return {}
    raise BenchError(f"unknown task {task!r}")
