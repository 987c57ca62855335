"""``crossplane render`` against the function running locally, as examples/README.md documents.

``examples/functions.yaml`` declares the Function for the Development
runtime; ``crossplane render`` then calls the running function over gRPC
(FunctionRunnerService v1beta1, an empty desired state, an empty context
and the pipeline step's input), one pipeline step at a time. This test
makes exactly those calls against ``python -m asya_state_function
--insecure`` and checks each example's composed Deployment is its
expected-render.yaml.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from crossplane.function import resource
from crossplane.function.proto.v1beta1 import run_function_pb2 as fnv1beta1
from crossplane.function.proto.v1beta1 import run_function_pb2_grpc as grpcv1beta1
from google.protobuf import struct_pb2

from asya_state_function.structs import to_dict

from .helpers import EXAMPLES, PACKAGE

FUNCTIONS = yaml.safe_load((EXAMPLES / "functions.yaml").read_text())
COMPOSITION = yaml.safe_load((PACKAGE / "configuration" / "composition.yaml").read_text())
# Examples whose file names a namespace (crossplane render keeps the XR as written).
ACTORS = [
    path
    for path in sorted(EXAMPLES.glob("*/actor.yaml"))
    if yaml.safe_load(path.read_text())["metadata"].get("namespace")
    and not path.with_name("upstream-deployment.yaml").exists()
]


def test_functions_file_runs_the_composition_function_in_development_mode() -> None:
    annotations = FUNCTIONS["metadata"]["annotations"]
    assert annotations["render.crossplane.io/runtime"] == "Development"
    assert annotations["render.crossplane.io/runtime-development-target"] == "localhost:9443"
    steps = COMPOSITION["spec"]["pipeline"]
    assert {step["functionRef"]["name"] for step in steps} == {FUNCTIONS["metadata"]["name"]}, (
        "crossplane render finds each step's function by name in the functions file"
    )


@pytest.fixture(scope="module")
def development_function() -> Iterator[str]:
    """``python -m asya_state_function --insecure``, as examples/README.md starts it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = f"127.0.0.1:{port}"
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
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)


def _crossplane_render(target: str, xr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The desired composed resources after the pipeline, called the way crossplane render calls."""
    observed = fnv1beta1.State(composite=fnv1beta1.Resource(resource=resource.dict_to_struct(xr)))
    desired = fnv1beta1.State()
    with grpc.insecure_channel(target) as channel:
        stub = grpcv1beta1.FunctionRunnerServiceStub(channel)
        for step in COMPOSITION["spec"]["pipeline"]:
            request = fnv1beta1.RunFunctionRequest(
                observed=observed, desired=desired, context=struct_pb2.Struct()
            )
            request.input.CopyFrom(resource.dict_to_struct(step["input"]))
            response = stub.RunFunction(request, timeout=10)
            fatal = [r.message for r in response.results if r.severity == fnv1beta1.SEVERITY_FATAL]
            assert not fatal, f"step {step['step']}: {fatal}"
            desired = response.desired
    return {name: to_dict(composed.resource) for name, composed in desired.resources.items()}


@pytest.mark.parametrize("path", ACTORS, ids=[p.parent.name for p in ACTORS])
def test_crossplane_render_composes_the_expected_render(
    development_function: str, path: Path
) -> None:
    composed = _crossplane_render(development_function, yaml.safe_load(path.read_text()))
    (expected,) = yaml.safe_load_all(path.with_name("expected-render.yaml").read_text())
    # asya-state render names the composition resource the way crossplane render does.
    name = expected["metadata"].pop("annotations")["crossplane.io/composition-resource-name"]
    assert composed == {name: expected}
