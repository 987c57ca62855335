"""A model of upstream Asya's state proxy request pattern, for same-run comparisons.

Owns: a sidecar process (``python -m asya_state_cli.bench.upstream s3|gcs
SOCKET``) that serves HEAD and GET of ``/keys/<key>`` on a Unix socket the
way upstream's sidecar does — Python's single-threaded ``http.server``,
HTTP/1.0, one backend request per operation (S3 HeadObject / GetObject,
GCS metadata get / media download), 404 for a missing key and no question
about directories — and ``UpstreamStore``, the handler side: a new Unix
socket connection per file operation, as upstream's runtime opens one. It
is our own code written from upstream's documented behaviour, not
upstream's; it stands for what upstream costs (requests, round trips and
connections), not for its every detail.

Must not: be used outside the benchmark, bind anything but a Unix socket,
or import a backend client in the handler process.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

PREFIX = "upstream/"


class _Backend:
    """One request per operation against the bucket the environment names."""

    def __init__(self, kind: str, env: Mapping[str, str]) -> None:
        self.kind = kind
        bucket = env["STATE_BUCKET"]
        if kind == "s3":
            import boto3

            self._s3: Any = boto3.client(
                "s3",
                endpoint_url=env["AWS_ENDPOINT_URL"],
                region_name=env["AWS_REGION"],
                aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            )
            self._bucket: Any = bucket
        else:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            client = storage.Client(
                project=env["GCS_PROJECT"],
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options={"api_endpoint": env["STORAGE_EMULATOR_HOST"]},
            )
            self._bucket = client.bucket(bucket)

    def size(self, key: str) -> int | None:
        if self.kind == "s3":
            from botocore.exceptions import ClientError

            try:
                head = self._s3.head_object(Bucket=self._bucket, Key=PREFIX + key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                    return None
                raise
            return int(head["ContentLength"])
        blob = self._bucket.get_blob(PREFIX + key)
        return None if blob is None else int(blob.size)

    def body(self, key: str) -> bytes | None:
        if self.kind == "s3":
            try:
                answer = self._s3.get_object(Bucket=self._bucket, Key=PREFIX + key)
            except self._s3.exceptions.NoSuchKey:
                return None
            data: bytes = answer["Body"].read()
            return data
        from google.api_core.exceptions import NotFound

        try:
            data = self._bucket.blob(PREFIX + key).download_as_bytes()
        except NotFound:
            return None
        return data


def _handler(backend: _Backend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _key(self) -> str:
            return self.path.removeprefix("/keys/")

        def do_HEAD(self) -> None:
            size = backend.size(self._key())
            self.send_response(404 if size is None else 204)
            if size is not None:
                self.send_header("Content-Length", str(size))
            self.end_headers()

        def do_GET(self) -> None:
            data = backend.body(self._key())
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


class _UnixServer(HTTPServer):
    address_family = socket.AF_UNIX

    def server_bind(self) -> None:
        self.socket.bind(self.server_address)
        self.server_name, self.server_port = "localhost", 0


def main(argv: list[str]) -> int:
    kind, path = argv
    backend = _Backend(kind, os.environ)
    with _UnixServer(path, _handler(backend)) as server:  # type: ignore[arg-type]
        server.serve_forever()
    return 0


class UpstreamSidecar:
    """The model sidecar as a process on ``socket_path``, for the length of a ``with``."""

    def __init__(self, kind: str, socket_path: Path, env: Mapping[str, str]) -> None:
        self.kind = kind
        self.socket_path = socket_path
        self.env = dict(env)
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.socket_path.unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, self.kind, str(self.socket_path)],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not self.socket_path.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"the upstream model on {self.socket_path} did not start")
            time.sleep(0.05)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self._path)
        self.sock = sock


def upstream_request(socket_path: str, method: str, key: str) -> tuple[int, bytes]:
    """One operation as upstream's runtime sends it: a new connection, one request."""
    connection = _UnixConnection(socket_path)
    try:
        connection.request(method, "/keys/" + key)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
