"""Faults with real processes: killed and restarted connectors, missing sockets.

Each test runs a local pod — a handler process with the runtime hooks, and a
real ``fs-buffered-cas`` connector process — and injects the fault from
outside. Nothing written may ever be observed partially.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asya_state_cli.connector_process import ConnectorProcess
from asya_state_cli.runner.mounts import Mount
from asya_state_cli.runner.pod import Pod

HERE = Path(__file__).parent
MiB = 1024 * 1024
PodFactory = Callable[[str], Pod]


def _digest(fill: str, mib: int) -> str:
    return hashlib.sha256(fill.encode() * MiB * mib).hexdigest()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def make_pod(state_dir: Path) -> Iterator[PodFactory]:
    pods: list[Pod] = []
    workdirs: list[tempfile.TemporaryDirectory[str]] = []

    def make(write: str) -> Pod:
        workdir = tempfile.TemporaryDirectory(prefix="asya-fault-", dir="/tmp")
        workdirs.append(workdir)
        mount = Mount("state", "/state", "fs-buffered-cas", write, {"STATE_DIR": str(state_dir)})
        pod = Pod(
            0,
            [mount],
            "fault_handlers.handle",
            workdir=Path(workdir.name),
            handler_path=HERE,
            connector_env={},
        )
        pod.start()
        pods.append(pod)
        return pod

    yield make
    for pod in pods:
        pod.stop()
    for workdir in workdirs:
        workdir.cleanup()


def call(pod: Pod, op: str, **payload: Any) -> dict[str, Any]:
    return pod.handle(0, {"op": op, **payload})


def restart_connector(pod: Pod) -> None:
    old = pod.connectors[0]
    pod.connectors[0] = ConnectorProcess(old.name, old.socket_path, old.env).start()
    pod.release(0)


def _wait_for_temp_file(directory: Path, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if directory.exists() and any(p.name.startswith(".asya-tmp-") for p in directory.iterdir()):
            return
        time.sleep(0.005)
    raise AssertionError("the write never reached the connector")


@pytest.mark.parametrize("write", ["buffered", "passthrough"])
def test_sigkill_mid_write_leaves_the_old_version(
    make_pod: PodFactory, state_dir: Path, write: str
) -> None:
    pod = make_pod(write)
    assert "outputs" in call(pod, "write", path="/state/model.bin", fill="a", mib=4)
    pause = 0.05 if write == "passthrough" else 0.0
    replies: list[dict[str, Any]] = []
    writer = threading.Thread(
        target=lambda: replies.append(
            call(pod, "write", path="/state/model.bin", fill="b", mib=48, pause=pause)
        )
    )
    writer.start()
    _wait_for_temp_file(state_dir)
    # Kept down: once it is back, the runtime's own retry would land the write.
    pod.hold_down(0, kill=True)
    writer.join(60)
    (reply,) = replies
    assert "error" in reply, "the interrupted write must fail in the handler"
    assert reply["error"].split(":")[0] in {
        "ConnectionError",
        "ConnectionResetError",
        "BrokenPipeError",
        "OSError",
    }

    # Nothing partial on disk, and after a restart the handler reads the old version.
    assert (state_dir / "model.bin").read_bytes() == b"a" * 4 * MiB
    restart_connector(pod)
    after = call(pod, "read", path="/state/model.bin")
    assert after["outputs"] == [{"sha256": _digest("a", 4), "size": 4 * MiB}]


def test_runtime_reconnects_after_a_connector_restart(make_pod: PodFactory) -> None:
    pod = make_pod("buffered")
    assert "outputs" in call(pod, "write", path="/state/x.bin", fill="z", mib=1)
    pod.hold_down(0)
    down = call(pod, "read", path="/state/x.bin")
    assert down["error"].startswith("ConnectionError"), down["error"]
    restart_connector(pod)
    up = call(pod, "read", path="/state/x.bin")
    assert up["outputs"] == [{"sha256": _digest("z", 1), "size": MiB}], "no handler change needed"


def test_missing_socket_is_connection_error_not_file_not_found(make_pod: PodFactory) -> None:
    pod = make_pod("buffered")
    pod.hold_down(0)  # the sidecar is gone: its socket no longer exists
    for op in ("load_or_start_fresh", "exists", "read"):
        reply = call(pod, op, path="/state/history.json")
        assert reply.get("error", "").startswith("ConnectionError"), (op, reply)
