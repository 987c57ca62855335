"""The benchmark's pod: the local runner's pod with the benchmark handler and three mounts.

Owns: the mount layout every backend is measured through — ``/state/bench``
(buffered writes, pooled connections), ``/state/pass`` (passthrough
writes) and ``/state/nokeep`` (one connection per request, the baseline
that shows what pooling buys), each with its own connector process and
key prefix — and calling one task in the handler process.

Must not: re-implement process orchestration (``runner.pod`` starts and
stops the processes, exactly as ``asya-state run`` does).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runner.mounts import Mount
from ..runner.pod import Pod
from .rigs import Rig
from .stores import BenchError

HANDLER = "asya_state_cli.bench.handler.run"

BUFFERED = "bench"
PASSTHROUGH = "pass"
NO_KEEPALIVE = "nokeep"


# A large upload is answered only once the backend has it all; a slow
# emulator can take minutes for 1 GiB, longer than the runtime's default.
TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class BenchMount(Mount):
    """A runner mount with the benchmark's timeout that can also turn connection reuse off."""

    keepalive: bool = True

    def runtime_entry(self) -> str:
        entry = f"{super().runtime_entry()},timeout={TIMEOUT_SECONDS}"
        return entry if self.keepalive else entry + ",keepalive=false"


class TaskFailed(BenchError):
    """A task raised in the handler process; ``traceback`` is the handler's."""

    def __init__(self, message: str, traceback: str) -> None:
        super().__init__(message)
        self.traceback = traceback


def bench_mounts(rig: Rig) -> list[Mount]:
    return [
        BenchMount(BUFFERED, f"/state/{BUFFERED}", rig.connector, env=_prefix(BUFFERED)),
        BenchMount(
            PASSTHROUGH,
            f"/state/{PASSTHROUGH}",
            rig.passthrough_connector,
            write="passthrough",
            env=_prefix(PASSTHROUGH),
        ),
        BenchMount(
            NO_KEEPALIVE,
            f"/state/{NO_KEEPALIVE}",
            rig.connector,
            env=_prefix(NO_KEEPALIVE),
            keepalive=False,
        ),
    ]


def _prefix(name: str) -> dict[str, str]:
    return {"STATE_PREFIX": f"bench-{name}/"}


def mount_store(name: str) -> dict[str, str]:
    """The store config of the file API on mount ``name``: the full proxy path."""
    return {"kind": "files", "root": f"/state/{name}"}


class BenchPod:
    """Connector processes for the three mounts and one handler process running HANDLER."""

    def __init__(self, rig: Rig, workdir: Path) -> None:
        self.mounts = bench_mounts(rig)
        self.workdir = workdir
        self._pod = Pod(
            0,
            self.mounts,
            HANDLER,
            workdir=workdir,
            handler_path=workdir,
            connector_env=rig.connector_env,
        )
        self._ids = itertools.count()

    def start(self) -> None:
        self._pod.start()

    def stop(self) -> None:
        self._pod.stop()

    def call(self, payload: dict[str, Any]) -> dict[str, Any]:
        reply = self._pod.handle(next(self._ids), payload)
        if "outputs" not in reply:
            raise TaskFailed(
                f"{payload['task']} failed: {reply.get('error')}", reply.get("traceback", "")
            )
        (output,) = reply["outputs"]
        result: dict[str, Any] = output
        return result

    @property
    def handler_pid(self) -> int:
        return self._pod.worker_pid

    def connector_pid(self, mount: str) -> int:
        for spec, process in zip(self.mounts, self._pod.connectors):
            if spec.name == mount:
                return process.pid
        raise KeyError(mount)
