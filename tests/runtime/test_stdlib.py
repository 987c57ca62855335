"""Standard-library modules on state paths, whatever the import order; rotating log files.

Some modules keep their own name for ``open`` (bz2, tokenize, tarfile), and
the runtime itself imports bz2 and tokenize before it patches anything: the
hooks must reach them anyway. Round trips run in fresh interpreters that get
the hooks the production way (sitecustomize on PYTHONPATH), once with the
modules imported before sitecustomize runs (``python -S`` then
``site.main()``, the order of a ``.pth`` import) and once after it, on the
fs, Redis and S3 connectors. "After" holds for every module checked except
bz2, lzma, linecache and codecs, which the runtime's own imports load first
in every process.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import asya_state_runtime
from asya_state_cli.connector_process import ConnectorProcess
from asya_state_cli.servers.moto import MotoServer
from asya_state_cli.servers.redis import RedisServer
from tests.runtime.conftest import RUNTIME_DIR

HERE = Path(__file__).resolve().parent
BACKENDS = ("fs", "redis", "s3")
# What stdlib_roundtrip.py reports on, and what it imports (before sitecustomize, in one order).
ROUND_TRIPS = [
    "bz2",
    "lzma",
    "gzip",
    "tarfile",
    "zipfile",
    "linecache",
    "fileinput",
    "codecs",
    "shelve",
    "logging",
]
ROUND_TRIP_MODULES = ", ".join([*ROUND_TRIPS, "dbm.dumb", "logging.handlers"])


@dataclass(frozen=True)
class Mounts:
    """One mount per backend, ``/<backend>``, each served by its connector process."""

    socket_dir: Path

    spec = ";".join(f"{name}:/{name}" for name in BACKENDS)

    def env(self, spec: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_STATE_PROXY_")}
        env["ASYA_STATE_PROXY_MOUNTS"] = spec or self.spec
        env["ASYA_STATE_PROXY_SOCKET_DIR"] = str(self.socket_dir)
        env["PYTHONPATH"] = str(RUNTIME_DIR)
        return env


@pytest.fixture(scope="module")
def mounts(
    redis_server: RedisServer, moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mounts]:
    moto_server.create_bucket("stdlib-hooks")
    connectors = {
        "fs": ("fs-buffered-cas", {"STATE_DIR": str(tmp_path_factory.mktemp("fs"))}),
        "redis": ("redis-buffered-cas", {"REDIS_URL": redis_server.url}),
        "s3": ("s3-buffered-cas", moto_server.connector_env("stdlib-hooks")),
    }
    with tempfile.TemporaryDirectory(prefix="asya-std-", dir="/tmp") as sockets:
        started: list[ConnectorProcess] = []
        try:
            for name, (connector, env) in connectors.items():
                socket = Path(sockets) / f"{name}.sock"
                started.append(ConnectorProcess(connector, socket, env).start())
            yield Mounts(Path(sockets))
        finally:
            for process in started:
                process.stop()


@pytest.fixture
def installed(mounts: Mounts) -> Iterator[Mounts]:
    asya_state_runtime.install(mounts.spec, socket_dir=str(mounts.socket_dir))
    try:
        with asya_state_runtime.revision_scope():
            yield mounts
    finally:
        asya_state_runtime.uninstall()


def python(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_every_standard_library_binding_of_a_patched_function_is_covered() -> None:
    # No mounts in the environment: the script imports the whole standard
    # library first, then installs, then uninstalls.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_STATE_PROXY_")}
    env["PYTHONPATH"] = str(RUNTIME_DIR)
    report = json.loads(python([str(HERE / "stdlib_scan.py")], env).splitlines()[-1])
    captured = [tuple(key) for key in report["captured"]]
    # The bindings issue 16 found; a scan that finds none of them scans nothing.
    for known in [
        ("bz2", "_builtin_open"),
        ("tarfile", "bltn_open"),
        ("tokenize", "_builtin_open"),
    ]:
        assert known in captured
    assert report["uncovered"] == []
    assert [tuple(key) for key in report["rebound"]] == captured
    assert [tuple(key) for key in report["restored"]] == captured


def test_functions_captured_while_installed_work_after_uninstall(
    mounts: Mounts, tmp_path: Path
) -> None:
    asya_state_runtime.install(mounts.spec, socket_dir=str(mounts.socket_dir))
    # What a module imported now binds, as tarfile binds bltn_open = open.
    captured_open, captured_exists = open, os.path.exists
    asya_state_runtime.uninstall()
    assert open is not captured_open
    with captured_open(tmp_path / "local.txt", "w") as f:
        f.write("local")
    assert captured_exists(tmp_path / "local.txt")
    assert (tmp_path / "local.txt").read_text() == "local"


@pytest.mark.parametrize("order", ["imported-before-hooks", "imported-after-hooks"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_stdlib_modules_round_trip(mounts: Mounts, ns: str, backend: str, order: str) -> None:
    script = str(HERE / "stdlib_roundtrip.py")
    root = f"/{backend}/{ns}"
    if order == "imported-before-hooks":
        args = [
            "-S",
            "-c",
            f"import {ROUND_TRIP_MODULES}\n"
            "import site, sys, runpy\n"
            "assert 'asya_state_runtime' not in sys.modules\n"
            "site.main()\n"
            f"sys.argv = [{script!r}, {root!r}]\n"
            f"runpy.run_path({script!r}, run_name='__main__')\n",
        ]
    else:
        args = [script, root]
    results = json.loads(python(args, mounts.env()).splitlines()[-1])
    failures = {name: result for name, result in results.items() if result != "ok"}
    assert not failures, "\n".join(f"--- {name}\n{tb}" for name, tb in failures.items())
    assert set(results) == set(ROUND_TRIPS)


def test_bz2_writes_to_the_backend_when_the_mount_path_exists_locally(
    mounts: Mounts, tmp_path: Path
) -> None:
    local = tmp_path / "state"
    local.mkdir()
    env = mounts.env(f"fs:{local}")
    # The runtime imports bz2 (through shutil) before it patches open.
    code = f"""
import sys
assert "bz2" in sys.modules
import bz2
with bz2.open("{local}/notes.txt.bz2", "wt") as f:
    f.write("kept in the backend\\n" * 1000)
"""
    python(["-c", code], env)
    assert list(local.iterdir()) == []
    check = f"""
import bz2
with open("{local}/notes.txt.bz2", "rb") as f:
    print(bz2.decompress(f.read()).decode().count("kept in the backend"))
"""
    assert python(["-c", check], env).split() == ["1000"]


# -- rotating log files ------------------------------------------------------------


def read_dir(directory: str) -> dict[str, list[str]]:
    """The records in each log file of ``directory``, by file name."""
    found = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name)) as f:
            found[name] = f.read().splitlines()
    return found


def records(first: int, count: int) -> list[str]:
    return [f"record {i:03d}" for i in range(first, first + count)]


def log_to(handler: logging.Handler, messages: list[str]) -> None:
    handler.setFormatter(logging.Formatter("%(message)s"))
    # handleError prints instead of raising: a lost record shows as a wrong count.
    for message in messages:
        handler.handle(logging.makeLogRecord({"msg": message, "levelno": logging.INFO}))


def rotate_by_size(directory: str) -> dict[str, list[str]]:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "app.log")
    # Each record is 11 bytes with its newline: five fit under 56.
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=56, backupCount=3)
    log_to(handler, records(0, 23))
    handler.close()
    # A new handler (a new process) continues the file it finds.
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=56, backupCount=3)
    log_to(handler, records(23, 4))
    handler.close()
    return read_dir(directory)


def rotate_by_time(directory: str) -> dict[str, list[str]]:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "app.log")
    handler = logging.handlers.TimedRotatingFileHandler(path, when="H", backupCount=2, utc=True)
    hour = 1_700_000_000 - 1_700_000_000 % 3600
    for batch in range(5):
        if batch:
            # The hour is over: the next record rotates, named for the hour before.
            handler.rolloverAt = hour + batch * 3600
        log_to(handler, records(batch * 10, 3 + batch))
    handler.close()
    return read_dir(directory)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotating_file_handler_rotates_by_size(
    installed: Mounts, ns: str, backend: str, tmp_path: Path
) -> None:
    local = rotate_by_size(str(tmp_path / "local"))
    # The second handler found three records and rotated at the third of its four.
    assert local == {
        "app.log": records(25, 2),
        "app.log.1": records(20, 5),
        "app.log.2": records(15, 5),
        "app.log.3": records(10, 5),
    }
    assert rotate_by_size(f"/{backend}/{ns}") == local


@pytest.mark.parametrize("backend", BACKENDS)
def test_timed_rotating_file_handler_rotates_and_keeps_backup_count(
    installed: Mounts, ns: str, backend: str, tmp_path: Path
) -> None:
    local = rotate_by_time(str(tmp_path / "local"))
    assert local == {
        "app.log": records(40, 7),
        "app.log.2023-11-15_01": records(30, 6),
        "app.log.2023-11-15_00": records(20, 5),
    }
    assert rotate_by_time(f"/{backend}/{ns}") == local
