"""Fixtures of the runtime tests: real connector processes on real Unix sockets.

One connector process per mount name, started once per session in a private
socket directory (``<dir>/<mount>.sock``, the runtime's socket contract):

- ``mem``: the memory connector (every capability);
- ``small``: the memory connector limited to SMALL_LIMIT bytes per object;
- ``cas``: fs-buffered-cas; ``lww``: fs-buffered-lww;
- ``stream``: fs-buffered-lww on the same directory as ``lww``, mounted with
  passthrough writes, so what one writes the other reads.

``hooks`` installs the runtime in the test process; ``run_handler`` runs
code in a fresh interpreter that gets the hooks the production way
(``sitecustomize`` on PYTHONPATH plus ``ASYA_STATE_PROXY_MOUNTS``). Every
test works below its own ``ns`` directory so tests never see each other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import asya_state_runtime
from asya_state_cli.connector_process import ConnectorProcess

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "runtime"
SMALL_LIMIT = 64 * 1024
MOUNTS = "mem:/state;small:/small;cas:/cas;lww:/lww;stream:/stream:write=passthrough"


@dataclass(frozen=True)
class Connectors:
    socket_dir: Path
    state_dir: Path
    processes: dict[str, ConnectorProcess]

    @property
    def env(self) -> dict[str, str]:
        """The runtime's environment contract for these connectors."""
        return {
            "ASYA_STATE_PROXY_MOUNTS": MOUNTS,
            "ASYA_STATE_PROXY_SOCKET_DIR": str(self.socket_dir),
        }


@pytest.fixture(scope="session")
def connectors() -> Iterator[Connectors]:
    with (
        tempfile.TemporaryDirectory(prefix="asya-rt-", dir="/tmp") as sockets,
        tempfile.TemporaryDirectory(prefix="asya-rt-state-") as state,
    ):
        socket_dir, state_dir = Path(sockets), Path(state)
        fs_env = {"STATE_DIR": state, "STATE_PREFIX": "lww"}
        specs = {
            "mem": ("memory", {}),
            "small": ("memory", {"MEMORY_MAX_OBJECT_BYTES": str(SMALL_LIMIT)}),
            "cas": ("fs-buffered-cas", {"STATE_DIR": state, "STATE_PREFIX": "cas"}),
            "lww": ("fs-buffered-lww", fs_env),
            "stream": ("fs-buffered-lww", fs_env),
        }
        processes: dict[str, ConnectorProcess] = {}
        try:
            for mount, (name, env) in specs.items():
                processes[mount] = ConnectorProcess(name, socket_dir / f"{mount}.sock", env).start()
            yield Connectors(socket_dir, state_dir, processes)
        finally:
            for process in processes.values():
                process.stop()


@pytest.fixture
def hooks(connectors: Connectors) -> Iterator[Connectors]:
    """The runtime installed in this process for the duration of one test, in its own revision scope."""
    asya_state_runtime.install(MOUNTS, socket_dir=str(connectors.socket_dir))
    try:
        with asya_state_runtime.revision_scope():
            yield connectors
    finally:
        asya_state_runtime.uninstall()


@pytest.fixture
def ns() -> str:
    """A directory name private to one test."""
    return f"t{uuid.uuid4().hex[:10]}"


def handler_env(connectors: Connectors, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_STATE_PROXY_")}
    env.update(connectors.env)
    env["PYTHONPATH"] = str(RUNTIME_DIR)
    env.update(extra)
    return env


def run_handler(
    connectors: Connectors, code: str, *, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that activates the hooks like a pod does."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env if env is not None else handler_env(connectors),
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"handler exited with {result.returncode}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}"
        )
    return result
