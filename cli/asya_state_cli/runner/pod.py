"""One local "pod": its connector processes and its handler process.

Owns: starting each mount's connector (``asya-state connector NAME``) on a
socket in the pod's private directory, then the handler process with the
same environment contract a Kubernetes pod gets (ASYA_STATE_PROXY_MOUNTS,
ASYA_STATE_PROXY_SOCKET_DIR, ASYA_HANDLER, the runtime directory on
PYTHONPATH); sending
it one message at a time; stopping everything.

Must not: decide retries or print results (the dispatcher does).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import IO, Any

from ..connector_process import ConnectorProcess
from .mounts import Mount, mounts_env


class PodError(RuntimeError):
    """A pod could not start or its handler process died."""


def runtime_dir() -> Path:
    """The directory holding ``sitecustomize.py`` and ``asya_state_runtime``."""
    import asya_state_runtime

    directory = Path(asya_state_runtime.__file__).resolve().parent.parent
    if not (directory / "sitecustomize.py").exists():
        raise PodError(f"runtime hook library incomplete: no sitecustomize.py in {directory}")
    return directory


class Pod:
    def __init__(
        self,
        index: int,
        mounts: list[Mount],
        handler: str,
        *,
        workdir: Path,
        handler_path: Path,
        connector_env: dict[str, str],
    ) -> None:
        self.index = index
        self.mounts = mounts
        self.handler = handler
        self.socket_dir = workdir / f"pod{index}"
        self.handler_path = handler_path
        self.connector_env = connector_env
        self.connectors: list[ConnectorProcess] = []
        self.worker: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        for mount in self.mounts:
            process = ConnectorProcess(
                mount.connector,
                self.socket_dir / f"{mount.name}.sock",
                {**self.connector_env, **mount.env},
            )
            self.connectors.append(process)
            process.start()  # waits for readiness: the first message never races the sidecar
        env = dict(os.environ)
        env["ASYA_STATE_PROXY_MOUNTS"] = mounts_env(self.mounts)
        env["ASYA_STATE_PROXY_SOCKET_DIR"] = str(self.socket_dir)
        env["ASYA_HANDLER"] = self.handler  # the runtime scopes revisions to each call of it
        env["ASYA_STATE_RUN_CAS_MOUNTS"] = ":".join(m.path for m in self.mounts if m.cas)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(runtime_dir()), str(self.handler_path), env.get("PYTHONPATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "asya_state_cli.runner.worker", self.handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            env=env,
            cwd=self.handler_path,
            start_new_session=True,  # Ctrl-C reaches the runner, which stops pods in order
        )
        hello = self._receive()
        if "fatal" in hello:
            self.stop()
            detail = hello.get("traceback", "")
            raise PodError(
                hello["fatal"] + (f"\n{textwrap.indent(detail.rstrip(), '    ')}" if detail else "")
            )

    @property
    def worker_pid(self) -> int:
        assert self.worker is not None
        return self.worker.pid

    def handle(self, message_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        if self.worker is None or self.worker.stdin is None:
            raise PodError(f"pod {self.index} is not running")
        try:
            self.worker.stdin.write(json.dumps({"id": message_id, "payload": payload}) + "\n")
            self.worker.stdin.flush()
        except BrokenPipeError as exc:
            raise PodError(f"pod {self.index}: the handler process exited") from exc
        return self._receive()

    def _receive(self) -> dict[str, Any]:
        assert self.worker is not None
        stdout: IO[str] | None = self.worker.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            status = self.worker.wait()
            raise PodError(f"pod {self.index}: the handler process exited with status {status}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def stop(self, *, interrupted: bool = False) -> None:
        """Stop the handler, then the connectors (sidecars outlive the handler, as in a pod).

        After the last message the handler exits on end of input; when
        interrupted its current message is abandoned, so it is terminated.
        """
        worker, self.worker = self.worker, None
        if worker is not None:
            with contextlib.suppress(OSError):
                if worker.stdin is not None:
                    worker.stdin.close()
            if interrupted:
                worker.terminate()
            try:
                worker.wait(1 if interrupted else 5)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        for process in reversed(self.connectors):
            process.stop()
        self.connectors.clear()


def stop_all(pods: list[Pod], *, interrupted: bool = False) -> None:
    """Stop pods in parallel: an interrupted run exits in the time of one pod, not of all."""
    threads = [
        threading.Thread(target=pod.stop, kwargs={"interrupted": interrupted}) for pod in pods
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
