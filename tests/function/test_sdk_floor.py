"""The SDK floor: declared once, pinned in function/constraints.txt, checked at start, tested.

The function image installs exactly function/constraints.txt; the slow test
here installs the same file in a fresh virtualenv and runs the RunFunction
table over gRPC against it, so the oldest versions we allow are versions we
ran.
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
    for args in (
        ["--no-deps", "-r", str(CONSTRAINTS)],
        # The project itself, as the image installs its wheel: nothing it depends on.
        ["--no-deps", str(ROOT)],
    ):
        installed = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *args],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
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
