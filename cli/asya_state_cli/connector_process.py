"""Run a connector as a child process on a Unix socket, as its sidecar does in a pod.

Owns: starting ``asya-state connector NAME`` with a given environment,
waiting until it answers on its socket, and stopping it (SIGTERM, then
SIGKILL after the grace period). Used by the local runner, the benchmark and
the tests, so all three exercise the real process boundary.

Must not: talk the protocol beyond the readiness check.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from .commands.probe import check


class ConnectorStartError(RuntimeError):
    """The connector exited or did not become ready; carries its stderr."""


class ConnectorProcess:
    def __init__(
        self,
        name: str,
        socket_path: str | Path,
        env: Mapping[str, str] | None = None,
        *,
        ready_timeout: float = 30.0,
        log_path: str | Path | None = None,
        wrapper: Sequence[str] = (),
    ) -> None:
        self.name = name
        # A command that runs the connector's command line given as its
        # arguments, exec-ing it so signals reach the connector (tests use
        # ``unshare`` to give a connector a filesystem of its own).
        self.wrapper = list(wrapper)
        self.socket_path = str(socket_path)
        self.env = dict(env or {})
        self.ready_timeout = ready_timeout
        self.log_path = Path(log_path) if log_path else Path(self.socket_path + ".log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "connector not started"
        return self.process.pid

    def start(self) -> Self:
        env = {**os.environ, **self.env, "CONNECTOR_SOCKET": self.socket_path}
        env.setdefault("PYTHONUNBUFFERED", "1")
        Path(self.socket_path).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*self.wrapper, sys.executable, "-m", "asya_state_cli", "connector", self.name],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        detail = "not started"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ConnectorStartError(
                    f"connector {self.name} exited with status {self.process.returncode}:\n{self.log_tail()}"
                )
            if os.path.exists(self.socket_path):
                healthy, detail = check(self.socket_path, ready=True, timeout=2.0)
                if healthy:
                    return
            time.sleep(0.02)
        self.stop()
        raise ConnectorStartError(
            f"connector {self.name} not ready after {self.ready_timeout}s ({detail})"
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM and wait for the drain; SIGKILL after ``grace``. Returns the exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        return process.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
