"""Compare-and-swap where handlers really run: long-lived pods without the runner, on every CAS connector.

Each pod is ``actor/actor_runtime.py``: a long-lived process with the hooks
active through ``sitecustomize`` and the pod's environment (the mount,
its socket directory, ``ASYA_HANDLER``), which imports the handler module
itself and calls the handler message after message in one task, requeueing
a message on FileExistsError like a queue. Nothing resets revisions between
messages except what the runtime does on its own. Two pods share one real
backend through their own connector processes' socket (one per connector
name, as the conformance suite starts them).

Exact counts are the check: every successful call's increment is in the
final value, every lost race surfaced as FileExistsError, and a message that
overwrites a key without reading it is never conditional on an earlier one.
The full matrix (every handler shape and every way of running concurrently,
on every CAS connector) is marked slow; the default run covers each shape
on fs-buffered-cas and the seeds' async generator on every CAS connector.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import asya_state_runtime
from tests.fixtures.connectors import ProcessFactory, env_fixture_name
from tests.runtime.conftest import RUNTIME_DIR

ACTOR_DIR = Path(__file__).resolve().parent / "actor"
CAS_CONNECTORS = [
    "fs-buffered-cas",
    "redis-buffered-cas",
    "s3-buffered-cas",
    "gcs-buffered-cas",
    "nats-kv-buffered-cas",
]
SHAPES = [
    "increment",
    "increment_async",
    "increment_generator",
    "increment_async_generator",
    "Counter.increment",
]
CANONICAL = "increment_async_generator"  # the seeds' handler shape
ROUNDS = 6
PAUSE = 0.02  # seconds between a handler's read and its write


class Pod:
    """One long-lived actor process; messages are sent and answered one at a time."""

    def __init__(self, env: dict[str, str], handler: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ACTOR_DIR / "actor_runtime.py")],
            env={**env, "ASYA_HANDLER": f"counter_handlers.{handler}"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd="/",
        )
        hello = self.receive()
        assert hello == {"ready": True, "scoped": True}, hello

    def send(self, payload: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(payload) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the pod exited with {self.process.wait()}"
        reply: dict[str, Any] = json.loads(line)
        assert "error" not in reply, reply["error"]
        return reply

    def handle(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.send(payload)
        return self.receive()

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Backend:
    """A CAS connector process and the environment of a pod mounting it at /state."""

    def __init__(self, name: str, socket_dir: Path) -> None:
        self.name = name
        self.socket_dir = socket_dir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_")}
        self.env.update(
            {
                "ASYA_STATE_PROXY_MOUNTS": f"{name}:/state",
                "ASYA_STATE_PROXY_SOCKET_DIR": str(socket_dir),
                "PYTHONPATH": os.pathsep.join((str(RUNTIME_DIR), str(ACTOR_DIR))),
            }
        )

    def read(self, path: str) -> Any:
        """Read through a runtime of our own, in a scope of its own."""
        asya_state_runtime.install(f"{self.name}:/state", socket_dir=str(self.socket_dir))
        try:
            with asya_state_runtime.revision_scope(), open(path) as f:
                return json.load(f)
        finally:
            asya_state_runtime.uninstall()


@pytest.fixture
def pods() -> Iterator[list[Pod]]:
    started: list[Pod] = []
    yield started
    for pod in started:
        pod.stop()


def backend(request: pytest.FixtureRequest, processes: ProcessFactory, name: str) -> Backend:
    connector = processes(name, request.getfixturevalue(env_fixture_name(name)))
    return Backend(name, Path(connector.socket_path).parent)


def matrix(fast: list[tuple[str, str]], every: list[tuple[str, str]]) -> list[Any]:
    """Every pair, the ones outside ``fast`` marked slow."""
    return [
        pytest.param(*pair, id="-".join(pair), marks=[] if pair in fast else [pytest.mark.slow])
        for pair in every
    ]


RACES = matrix(
    [("fs-buffered-cas", shape) for shape in SHAPES]
    + [(name, CANONICAL) for name in CAS_CONNECTORS],
    [(name, shape) for name in CAS_CONNECTORS for shape in SHAPES],
)


@pytest.mark.parametrize(("connector", "shape"), RACES)
def test_two_pods_racing_on_a_counter_count_exactly(
    request: pytest.FixtureRequest,
    connector_processes: ProcessFactory,
    pods: list[Pod],
    connector: str,
    shape: str,
) -> None:
    store = backend(request, connector_processes, connector)
    pods.extend(Pod(store.env, shape) for _ in range(2))
    path = f"/state/race-{os.urandom(6).hex()}/counter.json"
    replies = []
    for _ in range(ROUNDS):
        # Both pods get a message at once, so their reads and writes overlap.
        for pod in pods:
            pod.send({"path": path, "pause": PAUSE})
        replies += [pod.receive() for pod in pods]
    counts = sorted(reply["outputs"][-1]["count"] for reply in replies)
    conflicts = sum(reply["conflicts"] for reply in replies)
    assert counts == list(range(1, 2 * ROUNDS + 1)), "each success added exactly one"
    assert store.read(path) == 2 * ROUNDS
    assert conflicts > 0, "the pods never raced: the test proved nothing"
    assert sum(reply["attempts"] for reply in replies) == 2 * ROUNDS + conflicts


@pytest.mark.parametrize("connector", CAS_CONNECTORS)
def test_a_later_message_overwrites_without_reading_and_a_requeue_starts_fresh(
    request: pytest.FixtureRequest,
    connector_processes: ProcessFactory,
    pods: list[Pod],
    connector: str,
    tmp_path: Path,
) -> None:
    store = backend(request, connector_processes, connector)
    pod, other = Pod(store.env, "note"), Pod(store.env, "note")
    pods += [pod, other]
    path = f"/state/blind-{os.urandom(6).hex()}/blind.json"

    first = pod.handle({"path": path, "read": True, "by": "message 1"})
    assert (first["attempts"], store.read(path)) == (1, {"by": "message 1"})
    other.handle({"path": path, "read": False, "by": "another pod"})
    # Message 2 never reads the key: its write is not conditional on message 1's read.
    second = pod.handle({"path": path, "read": False, "by": "message 2"})
    assert (second["attempts"], second["conflicts"]) == (1, 0)
    assert store.read(path) == {"by": "message 2"}

    # Another pod writes between this message's read and its write: the write
    # conflicts, the message is delivered again and wins from a fresh read.
    marker = str(tmp_path / "interloped")
    third = pod.handle({"path": path, "read": True, "by": "message 3", "interloper": marker})
    assert (third["attempts"], third["conflicts"]) == (2, 1)
    assert store.read(path) == {"by": "message 3"}
    # And the pod goes on: the next blind write succeeds at once.
    other.handle({"path": path, "read": False, "by": "another pod again"})
    fourth = pod.handle({"path": path, "read": False, "by": "message 4"})
    assert (fourth["attempts"], store.read(path)) == (1, {"by": "message 4"})


CONCURRENCY = ["tasks", "threads", "to_thread"]
IN_ONE_POD = matrix(
    [("fs-buffered-cas", how) for how in CONCURRENCY] + [("redis-buffered-cas", "tasks")],
    [(name, how) for name in CAS_CONNECTORS for how in CONCURRENCY],
)


@pytest.mark.parametrize(("connector", "how"), IN_ONE_POD)
def test_concurrent_increments_in_one_handler_call_count_exactly(
    request: pytest.FixtureRequest,
    connector_processes: ProcessFactory,
    pods: list[Pod],
    connector: str,
    how: str,
) -> None:
    """The issue's reproduction: 4 workers x 20 increments, read and write apart, retried on conflict."""
    store = backend(request, connector_processes, connector)
    pods.append(Pod(store.env, "race"))
    path = f"/state/one-pod-{os.urandom(6).hex()}/counter.json"
    reply = pods[0].handle({"path": path, "how": how, "workers": 4, "increments": 20})
    totals = reply["outputs"][0]
    assert totals["successes"] == store.read(path) == 80
    assert totals["conflicts"] > 0, "the workers never raced: the test proved nothing"
