"""Each connector image installs only its own extra: importing a connector must not need another's client.

Runs a fresh interpreter in which every third-party client except the ones
a connector's extra installs is made unimportable, then builds the CLI and
imports that connector, as its image would.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

CLIENTS = {
    "boto3",
    "botocore",
    "google",
    "redis",
    "nats",
    "crossplane",
    "grpc",
    "yaml",
    "pydantic",
    "psutil",
    # The server and every client (the runtime's transport) speak HTTP themselves:
    # no image needs an HTTP library.
    "aiohttp",
    "multidict",
    "yarl",
}
# connector module -> the top-level packages its extra brings
OWN = {
    "memory": set(),
    "fs.backend": set(),
    "redis.backend": {"redis"},
    "nats_kv.backend": {"nats"},
    "s3.backend": {"boto3", "botocore"},
    "gcs.backend": {"google"},
}

PROGRAM = """
import importlib.abc, sys
blocked = set(sys.argv[1].split(",")) - {""}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is not installed in this image")
        return None
sys.meta_path.insert(0, Block())
from asya_state_cli.main import build_parser
build_parser()
import importlib
importlib.import_module("asya_state_connectors.backends." + sys.argv[2])
import asya_state_connectors.server.serve
print("ok")
"""


@pytest.mark.parametrize("module", sorted(OWN))
def test_a_connector_imports_with_only_its_own_extra(module: str) -> None:
    blocked = ",".join(sorted(CLIENTS - OWN[module]))
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, blocked, module],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_the_probe_needs_nothing_but_the_standard_library() -> None:
    """Nor the connector package or its server: only the runtime's transport, which is stdlib."""
    blocked = ",".join(sorted([*CLIENTS, "asya_state_connectors", "uvloop", "httptools"]))
    program = PROGRAM.replace(
        'importlib.import_module("asya_state_connectors.backends." + sys.argv[2])\nimport asya_state_connectors.server.serve\n',
        # A request through the transport (to a socket that is not there) imports all it needs.
        "from asya_state_cli.commands.probe import check\n"
        'assert not check("/nonexistent/probe.sock", ready=False, timeout=0.5)[0]\n',
    )
    result = subprocess.run(
        [sys.executable, "-c", program, blocked, "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
