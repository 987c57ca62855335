"""Running ``asya-state run`` as a real process from tests, all at once or line by line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class RunResult:
    status: int
    outputs: list[dict[str, Any]]
    stderr: str


def asya_run(
    handler: str,
    payloads: Iterable[dict[str, Any] | str],
    *,
    handler_path: Path,
    mounts: Iterable[str] = ("/state",),
    state_dir: Path | None = None,
    replicas: int = 1,
    env: Mapping[str, str] | None = None,
    extra: Iterable[str] = (),
    timeout: float = 240,
) -> RunResult:
    args = run_args(
        handler,
        handler_path=handler_path,
        mounts=mounts,
        state_dir=state_dir,
        replicas=replicas,
        extra=extra,
    )
    stdin = "".join((p if isinstance(p, str) else json.dumps(p)) + "\n" for p in payloads)
    completed = subprocess.run(
        args,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    outputs = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
    return RunResult(completed.returncode, outputs, completed.stderr)


def run_args(
    handler: str,
    *,
    handler_path: Path,
    mounts: Iterable[str] = ("/state",),
    state_dir: Path | None = None,
    replicas: int = 1,
    extra: Iterable[str] = (),
) -> list[str]:
    """The command line of ``asya-state run`` as :func:`asya_run` builds it."""
    args = [sys.executable, "-m", "asya_state_cli", "run", handler]
    args += ["--handler-path", str(handler_path)]
    for mount in mounts:
        args += ["--mount", mount]
    if state_dir is not None:
        args += ["--state-dir", str(state_dir)]
    return [*args, "--replicas", str(replicas), *extra]


class LiveRun:
    """``asya-state run`` fed line by line, so a test can inject a fault while it runs."""

    def __init__(self, args: list[str], env: Mapping[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.outputs: list[dict[str, Any]] = []
        self._stderr: list[str] = []
        self._arrived = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read_outputs, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_outputs(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._arrived:
                self.outputs.append(json.loads(line))
                self._arrived.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    def send(self, payloads: Iterable[dict[str, Any]]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("".join(json.dumps(p) + "\n" for p in payloads))
        self.process.stdin.flush()

    def wait_for_outputs(self, count: int, timeout: float = 60) -> None:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.outputs) >= count, timeout):
                tail = "".join(self._stderr[-30:])
                raise AssertionError(
                    f"{len(self.outputs)} of {count} outputs after {timeout}s; stderr ends:\n{tail}"
                )

    def finish(self, timeout: float = 120) -> RunResult:
        """Close the input and wait for the run to end."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        status = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        return RunResult(status, self.outputs, "".join(self._stderr))

    def __enter__(self) -> LiveRun:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
