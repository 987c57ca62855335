"""A throwaway S3 endpoint (moto's S3 server) on loopback, for tests and the benchmark.

Owns: the command line that runs moto's server with this virtualenv's
interpreter through ``moto_atomic`` (conditional writes atomic, as on S3;
127.0.0.1 only, a free port, optionally enforcing credentials and IAM),
readiness that waits for an HTTP answer rather than an open port, creating
buckets, and the connector environment that points an S3 connector at it
(dummy credentials, a fixed region).

Must not: listen beyond 127.0.0.1 or read the user's AWS configuration (the
environment it hands out carries its own dummy credentials).
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from .base import LoopbackServer, ServerStartError

REGION = "us-east-1"
# moto accepts any credentials; fixed values keep the user's own out of the picture.
ACCESS_KEY = "asya-test-access-key"
SECRET_KEY = "asya-test-secret-key"


class MotoServer(LoopbackServer):
    """moto's server (the ``moto[server]`` package) run by this interpreter.

    Not the ``moto_server`` script: moto checks ``If-Match``/``If-None-Match``
    and stores the object in separate steps on concurrent threads, so two
    conditional writers could both win; ``moto_atomic`` runs the same server
    with conditional requests serialized.
    """

    name = "moto"

    def __init__(self, port: int | None = None, *, enforce_auth: bool = False) -> None:
        """``enforce_auth``: check credentials and IAM policies (unknown keys are refused)."""
        super().__init__(port)
        self.enforce_auth = enforce_auth

    def environment(self) -> dict[str, str]:
        env = super().environment()
        if self.enforce_auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        return env

    def command(self) -> Sequence[str]:
        launcher = "asya_state_cli.servers.moto_atomic"
        return [sys.executable, "-m", launcher, "-H", "127.0.0.1", "-p", str(self.port)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> None:
        super().ready()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1.0):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer means the server is serving
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        raise ServerStartError(f"moto on port {self.port} never answered HTTP")

    def connector_env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The environment of an S3 connector that stores under ``bucket``/``prefix`` here."""
        env = {
            "STATE_BUCKET": bucket,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        if prefix:
            env["STATE_PREFIX"] = prefix
        return env

    def create_bucket(self, bucket: str, *, versioning: bool = False) -> None:
        """Create ``bucket`` (optionally with versioning on); needs the s3 extra (boto3)."""
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        try:
            client.create_bucket(Bucket=bucket)
            if versioning:
                client.put_bucket_versioning(
                    Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
                )
        finally:
            client.close()
