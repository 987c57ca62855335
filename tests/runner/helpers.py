"""Running ``asya-state run`` as a real process from tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    args = [
        sys.executable,
        "-m",
        "asya_state_cli",
        "run",
        handler,
        "--handler-path",
        str(handler_path),
    ]
    for mount in mounts:
        args += ["--mount", mount]
    if state_dir is not None:
        args += ["--state-dir", str(state_dir)]
    args += ["--replicas", str(replicas), *extra]
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
