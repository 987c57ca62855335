"""The same RunFunction table over real gRPC: ``python -m asya_state_function`` on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from crossplane.function.proto.v1beta1 import run_function_pb2 as fnv1beta1
from crossplane.function.proto.v1beta1 import run_function_pb2_grpc as grpcv1beta1
from google.protobuf import json_format

from asya_state_function.fn import FunctionRunner
from asya_state_function.main import main

from .cases import CASES, Case


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    target = f"127.0.0.1:{_free_port()}"
    server = subprocess.Popen(
        [sys.executable, "-m", "asya_state_function", "--insecure", "--address", target],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        with grpc.insecure_channel(target) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=30)
            except grpc.FutureTimeoutError:
                server.kill()
                _, err = server.communicate()
                pytest.fail(f"function server did not start: {err.decode()[-2000:]}")
        yield target
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
                pytest.fail("the function server ignored SIGTERM")
    assert server.returncode == 0, "SIGTERM stops the server cleanly"


def _plain(message: object) -> dict[str, object]:
    result: dict[str, object] = json_format.MessageToDict(message)  # type: ignore[arg-type]
    return result


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_grpc_matches_in_process(address: str, case: Case) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        over_wire = await grpcv1.FunctionRunnerServiceStub(channel).RunFunction(
            case.req, timeout=10
        )
    in_process = await FunctionRunner().RunFunction(case.req)
    assert _plain(over_wire) == _plain(in_process), case.reason


async def test_v1beta1_callers_get_the_same_answer(address: str) -> None:
    case = CASES[0]
    beta_request = fnv1beta1.RunFunctionRequest()
    beta_request.ParseFromString(case.req.SerializeToString())
    async with grpc.aio.insecure_channel(address) as channel:
        beta = await grpcv1beta1.FunctionRunnerServiceStub(channel).RunFunction(
            beta_request, timeout=10
        )
    answer = fnv1.RunFunctionResponse()
    answer.ParseFromString(beta.SerializeToString())
    assert _plain(answer) == _plain(await FunctionRunner().RunFunction(case.req)), case.reason


def test_serving_needs_certificates_or_insecure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TLS_SERVER_CERTS_DIR", raising=False)
    assert main(["--address", "127.0.0.1:0"]) == 2
    assert "--tls-certs-dir" in capsys.readouterr().err
