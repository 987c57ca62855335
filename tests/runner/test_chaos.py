"""Proof under chaos: the CAS counter counts every message exactly once while things die around it.

``examples/cas-counter`` runs under the real ``asya-state run`` with 4
replicas on Redis, NATS KV and fs while (a) the backend is SIGKILLed and
started again several times mid-run, (b) a pod's connector is SIGKILLed
mid-run (the runner restarts it, as the kubelet restarts a sidecar), and (c)
the handler process kills itself on some messages. Each run must end with
every line reported applied (or, for messages that crash every attempt,
failed), no count reported twice, and the stored count equal to the number
of messages applied: a false failure would show as a line reported failed,
a message applied twice as a count stored but reported by no message.

What makes it exact: a fault that takes the reply of an applied write makes
the runtime send the same request (same ``Asya-Request-Id``) again once the
connector or backend is back, and by then other replicas have usually
written the hot key, often dozens of times while a killed connector
restarts. Every backend keeps a record of each request for
``idempotency.RECORD_SECONDS`` whatever is written after it (README,
"Retries of a write whose reply was lost"), so the retry is answered as
applied instead of failing its condition and running the message again.

fs has no server to kill: its "backend outage" is every pod's connector
SIGKILLed at once (the process that holds the state directory), which the
runner restarts; (b) kills one pod's connector at a time.

The default versions run 40 messages through 2 or 3 faults per backend; the
200-message versions (6 outages of 1 to 3 s, 10 connector kills) run with
``--soak``.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from asya_state_cli.servers.base import LoopbackServer
from asya_state_cli.servers.nats import NatsServer
from tests.fixtures.redis import DurableRedis

from .helpers import EXAMPLES, LiveRun, RunResult, asya_run, run_args

HANDLERS = Path(__file__).parent
COUNTER = EXAMPLES / "cas-counter"
# Generous limits: 4 replicas on one key conflict often, and a fault costs retries, not messages.
RUN_OPTIONS = [
    "--max-attempts",
    "1000",
    "--max-transient-attempts",
    "100",
    "--retry-base",
    "0.01",
    "--retry-cap",
    "0.3",
]

# A read during an outage fails at once (503) and its message is requeued: backoff up
# to 1 s lets 100 transient attempts outlast a 20 s outage (0.3 s would not: about 12 s).
LONG_OUTAGE_OPTIONS = ["--retry-cap", "1"]


@dataclass
class Rig:
    """One backend for one run: the mount, its environment, and the server when there is one."""

    connector: str
    env: dict[str, str]
    state_dir: Path
    server: LoopbackServer | None


@pytest.fixture(params=["redis", "nats", "fs"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    prefix = f"chaos-{tmp_path.name}/"
    if request.param == "fs":
        yield Rig("fs-buffered-cas", {}, tmp_path / "state", None)
        return
    server: LoopbackServer
    if request.param == "redis":
        server = DurableRedis().start()  # append-only file: a restart keeps the count
        env = {"REDIS_URL": server.url, "STATE_PREFIX": prefix}
        connector = "redis-buffered-cas"
    else:
        server = NatsServer().start()  # JetStream file store: a restart keeps the count
        env = {"NATS_URL": server.url, "STATE_PREFIX": prefix}
        connector = "nats-kv-buffered-cas"
    try:
        yield Rig(connector, env, tmp_path / "state", server)
    finally:
        server.cleanup()


def _connectors(run: LiveRun) -> list[psutil.Process]:
    """The connector processes of every pod (children of the runner, as sidecars)."""
    found = []
    for child in psutil.Process(run.process.pid).children():
        try:
            if "connector" in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


def _kill_backend(rig: Rig, outage: float) -> Callable[[LiveRun], None]:
    def fault(run: LiveRun) -> None:
        if rig.server is None:
            for connector in _connectors(run):
                connector.kill()
            return
        rig.server.kill()
        time.sleep(outage)
        rig.server.start()

    return fault


def _kill_one_connector(seed: int) -> Callable[[LiveRun], None]:
    chooser = random.Random(seed)

    def fault(run: LiveRun) -> None:
        connectors = _connectors(run)
        assert connectors, "no connector to kill"
        chooser.choice(connectors).kill()

    return fault


def _run_counter(
    rig: Rig,
    payloads: list[dict[str, object]],
    *,
    faults: int,
    fault: Callable[[LiveRun], None] | None = None,
    handler: str = "counter.update_state_with_cas",
    handler_path: Path = COUNTER,
    extra: list[str] | None = None,
    replicas: int = 4,
    before_finish: Callable[[LiveRun], None] | None = None,
) -> RunResult:
    """Run the counter over ``payloads`` with ``replicas`` pods, injecting ``fault`` at even steps.

    ``before_finish`` sees the run once every output arrived, before it ends.
    """
    args = run_args(
        handler,
        handler_path=handler_path,
        mounts=[f"/state/shared={rig.connector}"],
        state_dir=rig.state_dir,
        replicas=replicas,
        extra=[*RUN_OPTIONS, *(extra or [])],
    )
    with LiveRun(args, rig.env) as run:
        run.send(payloads)
        for step in range(1, faults + 1):
            # Each fault lands while messages are still queued and in flight.
            run.wait_for_outputs(len(payloads) * step // (faults + 2), timeout=120)
            assert fault is not None
            fault(run)
        if before_finish is not None:
            run.wait_for_outputs(len(payloads), timeout=300)
            before_finish(run)
        return run.finish(timeout=300)


def _stored_count(rig: Rig) -> int:
    final = asya_run(
        "counter.read_count",
        [{}],
        handler_path=COUNTER,
        mounts=[f"/state/shared={rig.connector}"],
        state_dir=rig.state_dir,
        env=rig.env,
    )
    assert final.status == 0, final.stderr
    count: int = final.outputs[0]["count"]
    return count


def _assert_counted_exactly(rig: Rig, result: RunResult, lines: int, failed: set[int]) -> None:
    """Every line reported as expected, and every applied message counted exactly once."""
    applied = lines - len(failed)
    summary = re.search(
        rf"asya-state run: {lines} lines: (\d+) applied, (\d+) failed", result.stderr
    )
    assert summary, result.stderr
    assert (int(summary.group(1)), int(summary.group(2))) == (applied, len(failed)), result.stderr
    assert result.status == (1 if failed else 0), result.stderr
    assert len(result.outputs) == applied
    counts = sorted(o["new_count"] for o in result.outputs)
    stored = _stored_count(rig)
    doubled = sorted({c for c in counts if counts.count(c) > 1})
    # Every applied message wrote one increment; one applied twice would show as a
    # count stored but reported by no message.
    assert not doubled, f"counts reported twice: {doubled}\n{result.stderr}"
    assert counts == list(range(1, stored + 1)), (
        f"stored {stored}, applied {applied}: counts no message reported: "
        f"{sorted(set(range(1, stored + 1)) - set(counts))}\n{result.stderr}"
    )


def _backend_chaos(
    rig: Rig, messages: int, outages: int, seconds: list[float], extra: list[str] | None = None
) -> None:
    durations = iter(seconds * outages)
    server = rig.server

    def fault(run: LiveRun) -> None:
        _kill_backend(rig, next(durations))(run)

    result = _run_counter(
        rig, [{"n": n} for n in range(messages)], faults=outages, fault=fault, extra=extra
    )
    if server is not None:
        assert server.process is not None, "the backend must be up to read the count"
    _assert_counted_exactly(rig, result, messages, set())


def test_cas_counter_counts_exactly_while_the_backend_is_killed(rig: Rig) -> None:
    """40 messages, the backend SIGKILLed twice for a second (fs: every connector at once)."""
    _backend_chaos(rig, 40, 2, [1.0])


@pytest.mark.soak
def test_cas_counter_counts_exactly_while_the_backend_is_killed_six_times(rig: Rig) -> None:
    """200 messages, the backend SIGKILLed 6 times for 1 to 3 seconds each."""
    _backend_chaos(rig, 200, 6, [1.0, 2.0, 3.0])


@pytest.mark.slow
@pytest.mark.parametrize("rig", ["redis"], indirect=True)
def test_cas_counter_counts_exactly_through_an_outage_longer_than_the_retry_window(
    rig: Rig,
) -> None:
    """40 messages, Redis SIGKILLed once for 7 s, longer than the runtime's RETRY_WINDOW (5 s).

    A write Redis applied just before dying has its reply lost; its retries
    are answered "503 unreachable" while Redis is down, and the runtime keeps
    retrying (within the mount's timeout) instead of giving up after 5 s and
    letting the requeued message apply it again.
    """
    _backend_chaos(rig, 40, 1, [7.0], extra=LONG_OUTAGE_OPTIONS)


@pytest.mark.soak
@pytest.mark.parametrize("rig", ["redis"], indirect=True)
def test_cas_counter_counts_exactly_through_long_outages(rig: Rig) -> None:
    """200 messages, Redis SIGKILLed 3 times for 7, 12 and 20 s."""
    _backend_chaos(rig, 200, 3, [7.0, 12.0, 20.0], extra=LONG_OUTAGE_OPTIONS)


def _connector_chaos(rig: Rig, messages: int, kills: int) -> None:
    result = _run_counter(
        rig,
        [{"n": n} for n in range(messages)],
        faults=kills,
        fault=_kill_one_connector(messages),
    )
    _assert_counted_exactly(rig, result, messages, set())
    assert "was killed by SIGKILL; restarting it" in result.stderr


def test_cas_counter_counts_exactly_while_connectors_are_killed(rig: Rig) -> None:
    """40 messages, one pod's connector SIGKILLed 3 times; the runner restarts it."""
    _connector_chaos(rig, 40, 3)


@pytest.mark.soak
def test_cas_counter_counts_exactly_while_connectors_are_killed_many_times(rig: Rig) -> None:
    """200 messages, a pod's connector SIGKILLed 10 times."""
    _connector_chaos(rig, 200, 10)


def test_cas_counter_counts_exactly_when_the_handler_process_dies(rig: Rig, tmp_path: Path) -> None:
    """Some messages kill the handler process once (retried, applied), some every time (failed)."""
    once = {5: "os_exit", 17: "sigkill", 29: "exit", 41: "os_exit"}
    always = {11: "sigkill", 23: "os_exit", 35: "exit"}
    payloads: list[dict[str, object]] = []
    for n in range(1, 51):
        payload: dict[str, object] = {"n": n}
        if n in once:
            payload |= {"crash": once[n], "marker": str(tmp_path / f"crashed-{n}")}
        elif n in always:
            payload |= {"crash": always[n]}
        payloads.append(payload)
    result = _run_counter(
        rig,
        payloads,
        faults=0,
        handler="chaos_handlers.crash_then_count",
        handler_path=HANDLERS,
        extra=["--max-crashes", "2"],
    )
    _assert_counted_exactly(rig, result, 50, set(always))
    for line in always:
        assert f"line {line}: gave up: the handler process died 2 times" in result.stderr
