"""Run a connector as a child process on a Unix socket, as its sidecar does in a pod.

Owns: starting ``asya-state connector NAME`` with a given environment,
waiting until it serves on its socket and its backend answers (each with its
own bound, so a missing bucket or a closed port fails in seconds with the
connector's reason), restarting it on the same socket after it died, and
stopping it (SIGTERM, then SIGKILL after the grace period). Used by the local runner, the benchmark and
the tests, so all three exercise the real process boundary.

Must not: talk the protocol beyond the readiness check.
"""

from __future__ import annotations

import contextlib
import json
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

# One readiness answer; the connector bounds its own backend check below this.
CHECK_TIMEOUT = 3.0


class ConnectorStartError(RuntimeError):
    """The connector exited, did not start serving, or its backend is not ready; says why."""


def _reason(detail: str) -> str:
    """The message of a connector's error answer (``503 {"code", "message"}``), else the detail."""
    _, _, body = detail.partition(" ")
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        return detail
    return message if isinstance(message, str) and message else detail


class ConnectorProcess:
    def __init__(
        self,
        name: str,
        socket_path: str | Path,
        env: Mapping[str, str] | None = None,
        *,
        ready_timeout: float = 30.0,
        backend_timeout: float = 3.0,
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
        self.backend_timeout = backend_timeout
        self.log_path = Path(log_path) if log_path else Path(self.socket_path + ".log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "connector not started"
        return self.process.pid

    def start(self) -> Self:
        """Start the process and wait until it serves and its backend answers (see wait_ready)."""
        if self.process is not None and self.process.poll() is None:
            # A second launch would orphan the first process on the same socket.
            raise RuntimeError(f"connector {self.name} is already running on {self.socket_path}")
        self._launch()
        self.wait_ready()
        return self

    def restart(self) -> Self:
        """Start again on the same socket after the process died; waits until it serves.

        Its backend is not waited for: a connector restarted during a backend
        outage serves anyway and answers 503 until the backend is back, which
        callers retry like any other transient error.
        """
        old, self.process = self.process, None
        if old is not None and old.poll() is None:
            old.kill()
            old.wait()
        self._launch()
        self._wait_serving(time.monotonic() + self.ready_timeout)
        return self

    @property
    def exit_status(self) -> int | None:
        """The status of a process that was started and has exited since; None while it runs."""
        return None if self.process is None else self.process.poll()

    def _launch(self) -> None:
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

    def wait_ready(self) -> None:
        """Wait until the process serves (``ready_timeout``), then until its backend answers.

        Two bounds, because they wait for different things: starting the
        process (imports, opening the client) may take long on a loaded
        machine, while a connector that serves answers its readiness check at
        once. A backend that is missing or unreachable (no bucket, a closed
        port, refused credentials) still fails the check after
        ``backend_timeout``: the error then carries the connector's own
        reason, which names the bucket, URL or server and the cause.
        """
        self._wait_serving(time.monotonic() + self.ready_timeout)
        deadline = time.monotonic() + self.backend_timeout
        while True:
            healthy, detail = check(self.socket_path, ready=True, timeout=CHECK_TIMEOUT)
            if healthy:
                return
            self._raise_if_exited()
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        self.stop()
        raise ConnectorStartError(
            f"connector {self.name}: the backend is not ready: {_reason(detail)}"
        )

    def _wait_serving(self, deadline: float) -> None:
        detail = "not started"
        while time.monotonic() < deadline:
            self._raise_if_exited()
            if os.path.exists(self.socket_path):
                healthy, detail = check(self.socket_path, ready=False, timeout=CHECK_TIMEOUT)
                if healthy:
                    return
            time.sleep(0.02)
        self.stop()
        raise ConnectorStartError(
            f"connector {self.name} not serving after {self.ready_timeout}s ({detail})"
        )

    def _raise_if_exited(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise ConnectorStartError(
                f"connector {self.name} exited with status {self.process.returncode}:\n{self.log_tail()}"
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
        # ``with ConnectorProcess(...).start():`` enters a running process.
        return self if self.process is not None and self.process.poll() is None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
