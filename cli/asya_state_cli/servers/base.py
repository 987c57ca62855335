"""Start and stop real backend servers on loopback for tests and benchmarks.

Owns: the lifecycle shared by every launcher — a free 127.0.0.1 port, a child
process in its own session, waiting until it accepts connections, stopping
it (SIGTERM, then SIGKILL) and restarting it on the same port for fault tests.

Must not: bind anything but 127.0.0.1 or run without a bounded wait.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self


class ServerStartError(RuntimeError):
    """A loopback server did not come up; the message carries its output."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerStartError(f"process exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise ServerStartError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f}s")


def find_executable(name: str) -> str:
    """An executable from PATH or from this interpreter's bin directory."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ServerStartError(f"{name} is not installed (run ./dev setup)")
    return found


class LoopbackServer:
    """A backend server process bound to 127.0.0.1 on a free port.

    Subclasses implement ``command()`` and may override ``ready()``. Use as a
    context manager, or call ``start()``/``stop()``; ``restart()`` keeps the
    port so clients can reconnect.
    """

    name = "server"
    start_timeout = 30.0

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"asya-{self.name}-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._log_path = self.workdir / "server.log"

    # -- to implement -----------------------------------------------------

    def command(self) -> Sequence[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def ready(self) -> None:
        """Block until the server serves requests; the default waits for the port."""
        wait_for_port(self.port, self.start_timeout, self.process)

    # -- lifecycle --------------------------------------------------------

    def start(self) -> Self:
        log = self._log_path.open("ab")
        self.process = subprocess.Popen(
            list(self.command()),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=self.environment(),
            start_new_session=True,
        )
        log.close()
        try:
            self.ready()
        except Exception as exc:
            self.stop()
            raise ServerStartError(
                f"{self.name} failed to start: {exc}\n{self.log_tail()}"
            ) from exc
        return self

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
