"""One local "pod": its connector processes and its handler process.

Owns: starting each mount's connector (``asya-state connector NAME``) on a
socket in the pod's private directory, then the handler process with the
same environment contract a Kubernetes pod gets (ASYA_STATE_PROXY_MOUNTS,
ASYA_STATE_PROXY_SOCKET_DIR, ASYA_HANDLER, the runtime directory on
PYTHONPATH); sending
it one message at a time; restarting, as the kubelet restarts a container, a
connector that died as soon as it is seen dead (a watcher thread, so the
runtime's retry of a request whose reply the death lost reaches the new
connector within its retry window and is recognised, instead of the
message being requeued and applied twice) and a handler process that died
(before the next message), each noted on stderr; telling the dispatcher
when the handler process died on a message; stopping everything.

Must not: decide retries or print results (the dispatcher does).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import IO, Any

from ..connector_process import ConnectorProcess, ConnectorStartError
from .mounts import Mount, mounts_env

# How often the watcher looks for a dead connector (seconds); a restart takes far longer.
WATCH_INTERVAL = 0.05


class PodError(RuntimeError):
    """A pod could not start (or start its handler again), or was stopped."""


def exit_reason(status: int) -> str:
    """How a process ended, from its ``returncode``: ``exited with status 3``, ``was killed by SIGSEGV``."""
    if status >= 0:
        return f"exited with status {status}"
    try:
        name = signal.Signals(-status).name
    except ValueError:
        name = f"signal {-status}"
    return f"was killed by {name}"


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
        # Held while a process is (re)started, so stop() never misses one.
        self._lifecycle = threading.RLock()
        self._stopping = False
        self._watcher: threading.Thread | None = None
        # Connectors taken down on purpose (hold_down): neither restart path touches them.
        self._held: set[int] = set()

    def start(self) -> None:
        """Start the connectors, then the handler process; a restart starts only the latter."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if not self.connectors:
            for mount in self.mounts:
                process = ConnectorProcess(
                    mount.connector,
                    self.socket_dir / f"{mount.name}.sock",
                    {**self.connector_env, **mount.env},
                )
                self.connectors.append(process)
                process.start()  # waits for readiness: the first message never races the sidecar
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch_connectors, name=f"pod{self.index}-connectors", daemon=True
            )
            self._watcher.start()
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
        """The handler's reply to one message, or ``{"crashed": how}`` if its process died on it.

        A connector or handler process that died since the last message is
        restarted first; PodError when that fails or the pod was stopped.
        """
        worker = self._revive()
        assert worker.stdin is not None
        assert worker.stdout is not None
        try:
            worker.stdin.write(json.dumps({"id": message_id, "payload": payload}) + "\n")
            worker.stdin.flush()
            line = worker.stdout.readline()
        except (BrokenPipeError, ValueError):  # ValueError: stop() closed the pipe meanwhile
            line = ""
        if line:
            reply: dict[str, Any] = json.loads(line)
            return reply
        if self._stopping:
            raise PodError(f"pod {self.index} was stopped")
        return {"id": message_id, "crashed": exit_reason(worker.wait())}

    def _revive(self) -> subprocess.Popen[str]:
        """Restart what died since the last message, as the kubelet restarts a container."""
        with self._lifecycle:
            if self._stopping or self.worker is None:
                raise PodError(f"pod {self.index} is not running")
            self._restart_dead_connectors()
            if self.worker.poll() is not None:
                self.start()  # the dispatcher already said on which message it died
            return self.worker

    def _restart_dead_connectors(self) -> None:
        """Start again, on the same socket, every connector that died (the lifecycle lock held)."""
        for index, connector in enumerate(self.connectors):
            if index in self._held:
                continue
            if connector.process is None:  # an earlier restart failed (and said why)
                self._event(f"connector {connector.name} is down; starting it again")
                connector.restart()
                continue
            status = connector.exit_status
            if status is not None:
                self._event(f"connector {connector.name} {exit_reason(status)}; restarting it")
                connector.restart()

    def _watch_connectors(self) -> None:
        """Restart a dead connector at once, while the handler may still be retrying a request."""
        while not self._stopping:
            time.sleep(WATCH_INTERVAL)
            if all(
                i in self._held or (c.process is not None and c.exit_status is None)
                for i, c in enumerate(self.connectors)
            ):
                continue
            with self._lifecycle:
                if self._stopping:
                    return
                try:
                    self._restart_dead_connectors()
                except ConnectorStartError as exc:
                    # Tried again here after a pause, and before the next message, where
                    # a connector that cannot start fails the message with its reason.
                    self._event(str(exc))
                    time.sleep(1.0)

    def hold_down(self, index: int, *, kill: bool = False) -> None:
        """Stop (or SIGKILL) connector ``index`` and keep it down: a sidecar gone for a while."""
        with self._lifecycle:
            self._held.add(index)
            if kill:
                self.connectors[index].kill()
            else:
                self.connectors[index].stop()

    def release(self, index: int) -> None:
        """Let connector ``index`` be restarted again (by the watcher, or before the next message)."""
        with self._lifecycle:
            self._held.discard(index)

    def _event(self, text: str) -> None:
        print(f"asya-state run: pod {self.index}: {text}", file=sys.stderr, flush=True)

    def _receive(self) -> dict[str, Any]:
        worker = self.worker
        assert worker is not None
        assert worker.stdout is not None
        stdout: IO[str] = worker.stdout
        line = stdout.readline()
        if not line:
            status = exit_reason(worker.wait())
            raise PodError(f"pod {self.index}: the handler process {status} while starting")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def stop(self, *, interrupted: bool = False) -> None:
        """Stop the handler, then the connectors (sidecars outlive the handler, as in a pod).

        After the last message the handler exits on end of input; when
        interrupted its current message is abandoned, so it is terminated.
        """
        self._stopping = True
        with self._lifecycle:
            self._stop_processes(interrupted)

    def _stop_processes(self, interrupted: bool) -> None:
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
