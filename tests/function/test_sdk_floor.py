"""The SDK floor: declared once, pinned in function/constraints.txt, checked at start, tested.

The function image installs exactly function/constraints.txt; the slow test
here installs the same file in a fresh virtualenv from the configured
package index and runs the RunFunction table over gRPC against it, so the
oldest versions we allow are versions we ran. It skips, saying why, only
when pip reaches no index at all; an index that answers without a pinned
release fails it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator

import grpc
import pytest
from crossplane.function import response
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from google.protobuf import json_format

from asya_state_function import sdk
from asya_state_function.fn import FunctionRunner
from asya_state_function.main import main

from .cases import CASES
from .helpers import ROOT, actor, mount, request, run

CONSTRAINTS = ROOT / "function" / "constraints.txt"
PINS = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", CONSTRAINTS.read_text(), re.MULTILINE))


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_function_extra_floors_are_the_pinned_versions() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["function"]
    pins = {_normal(name): version for name, version in PINS.items()}
    for requirement in extra:
        name, floor = re.fullmatch(r"([A-Za-z0-9_.-]+)>=(\S+)", requirement).groups()
        assert pins.get(_normal(name)) == floor, (
            f"pyproject allows {requirement}; function/constraints.txt must pin {name}=={floor}"
        )
    assert pins["crossplane-function-sdk-python"] == sdk.FLOOR


def test_dockerfile_installs_exactly_the_constraints() -> None:
    dockerfile = (ROOT / "package" / "Dockerfile.function").read_text()
    assert "--no-deps -r /src/function/constraints.txt" in dockerfile
    assert re.search(r"pip install --no-cache-dir --no-deps \S*\.whl", dockerfile), (
        "the function wheel adds no dependency of its own choosing"
    )
    assert "pip check" in dockerfile


def test_an_sdk_without_set_conditions_is_refused_clearly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delattr(response, "set_conditions")
    assert main(["--insecure"]) == 2
    err = capsys.readouterr().err
    assert "has no response.set_conditions (added in 0.12.0)" in err
    assert "function/constraints.txt" in err


async def test_a_call_on_an_old_sdk_says_why_instead_of_an_internal_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(response, "set_conditions")
    out = await run(request(actor(mount("cache", "/state/cache"))))
    assert len(out.fatal) == 1
    assert out.fatal[0].startswith("asya-state function: crossplane-function-sdk-python ")
    assert "has no response.set_conditions (added in 0.12.0)" in out.fatal[0]


# What pip prints when it cannot reach an index at all (a connection refused,
# no name resolution, no route, a timeout, an index directory that is not
# there), as opposed to an index that answered without the pinned release.
_UNREACHABLE = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "Connection refused",
    "ConnectTimeoutError",
    "Read timed out",
    "ProxyError",
    "is ignored: it is neither a file nor a directory",
)


def unreachable_index(pip_stderr: str) -> str | None:
    """The line saying no package index could be reached, or None when one answered."""
    for line in pip_stderr.splitlines():
        if any(marker in line for marker in _UNREACHABLE):
            return line.strip()
    return None


def test_only_an_unreachable_index_counts_as_no_index() -> None:
    refused = (
        "WARNING: Retrying (Retry(total=0)) after connection broken by"
        " 'NewConnectionError(\"Failed to establish a new connection: [Errno 111]"
        " Connection refused\")': /simple/grpcio/\n"
        "ERROR: Could not find a version that satisfies the requirement grpcio==1.80.0"
    )
    assert unreachable_index(refused) is not None
    answered = (
        "ERROR: Could not find a version that satisfies the requirement grpcio==0.0.1"
        " (from versions: 1.80.0, 1.84.0)\nERROR: No matching distribution found"
    )
    assert unreachable_index(answered) is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def floor_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The function from this checkout, served by a virtualenv holding exactly the pins."""
    venv = tmp_path_factory.mktemp("floor") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # One quick question first, so that a machine without an index skips in
    # seconds: the SDK pin, no retries.
    sdk_pin = f"crossplane-function-sdk-python=={PINS['crossplane-function-sdk-python']}"
    asked = subprocess.run(
        [
            *(str(python), "-m", "pip", "download", "-q", "--no-deps", "--retries", "0"),
            *("--timeout", "20", "--dest", str(venv.parent / "probe"), sdk_pin),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if asked.returncode != 0 and (why := unreachable_index(asked.stderr)):
        pytest.skip(f"no package index reachable to install function/constraints.txt: {why}")
    for args in (
        ["--no-deps", "-r", str(CONSTRAINTS)],
        # The project itself, as the image installs its wheel: nothing it depends on.
        ["--no-deps", str(ROOT)],
    ):
        installed = subprocess.run(
            # One retry and a 60 s socket timeout: an index that does not
            # answer costs minutes, not pip's default of five retries each.
            [str(python), "-m", "pip", "install", "-q", "--retries", "1", "--timeout", "60", *args],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if installed.returncode != 0 and (why := unreachable_index(installed.stderr)):
            pytest.skip(f"no package index reachable to install function/constraints.txt: {why}")
        assert installed.returncode == 0, f"pip install {args}: {installed.stderr[-2000:]}"
    check = subprocess.run(
        [str(python), "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, f"the pins are not a consistent set: {check.stdout}"
    frozen = subprocess.run(
        [str(python), "-m", "pip", "freeze"], capture_output=True, text=True, timeout=120
    ).stdout
    versions = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", frozen, re.MULTILINE))
    assert {_normal(k): v for k, v in PINS.items()} == {
        _normal(k): v for k, v in versions.items() if _normal(k) != "asya-state-proxy"
    }, "the virtualenv holds exactly the pinned set"
    target = f"127.0.0.1:{_free_port()}"
    server = subprocess.Popen(
        [str(python), "-m", "asya_state_function", "--insecure", "--address", target],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path_factory.mktemp("cwd"),
    )
    try:
        with grpc.insecure_channel(target) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=60)
            except grpc.FutureTimeoutError:
                server.kill()
                _, err = server.communicate()
                pytest.fail(f"the floor function did not start: {err.decode()[-2000:]}")
        yield target
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.slow
async def test_the_pinned_floor_answers_the_table_like_the_newest_sdk(floor_server: str) -> None:
    async with grpc.aio.insecure_channel(floor_server) as channel:
        stub = grpcv1.FunctionRunnerServiceStub(channel)
        for case in CASES:
            floor = await stub.RunFunction(case.req, timeout=10)
            newest = await FunctionRunner().RunFunction(case.req)
            assert json_format.MessageToDict(floor) == json_format.MessageToDict(newest), (
                f"{case.id}: {case.reason}"
            )
