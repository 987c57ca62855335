"""``asya-state run`` behaves like the queue: faults requeue messages, every line's outcome is reported.

A handler process that dies is restarted and its message retried; a
connector that dies is restarted and the message that hit it retried; a
backend that is briefly gone costs retries, not messages; whatever cannot
be applied is reported failed with its reason, and the summary and the exit
status say so. Each test checks the state against what the runner reported.
"""

from __future__ import annotations

import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asya_state_cli.servers.redis import RedisServer
from tests.fixtures.redis import DurableRedis

from .helpers import LiveRun, asya_run, run_args

HANDLERS = Path(__file__).parent


def _done(state_dir: Path) -> set[int]:
    """The messages the handlers recorded in the fs backend's state."""
    return {int(p.stem) for p in (state_dir / "state" / "done").glob("*.json")}


def test_a_message_that_kills_the_handler_process_is_retried_then_reported(
    tmp_path: Path,
) -> None:
    crashes = {
        3: {"crash": "exit"},
        6: {"crash": "os_exit"},
        9: {"crash": "segv"},
        11: {"crash": "sigkill", "marker": str(tmp_path / "once")},  # only its first attempt dies
    }
    result = asya_run(
        "queue_handlers.crash",
        [{"n": n, **crashes.get(n, {})} for n in range(1, 13)],
        handler_path=HANDLERS,
        state_dir=tmp_path,
        replicas=2,
        extra=["--max-crashes", "2", "--retry-base", "0"],
    )
    applied = set(range(1, 13)) - {3, 6, 9}
    assert result.status == 1, result.stderr
    assert sorted(o["n"] for o in result.outputs) == sorted(applied)
    assert _done(tmp_path) == applied
    reasons = {
        3: "exited with status 3",
        6: "exited with status 7",
        9: "was killed by SIGSEGV",
    }
    for line, how in reasons.items():
        assert (
            f"line {line}: gave up: the handler process died 2 times running it (--max-crashes); "
            f"the last time it {how}"
        ) in result.stderr, result.stderr
    assert "line 11: the handler process was killed by SIGKILL (crash 1 of 2)" in result.stderr
    # One requeue for each message that always dies (the second death fails it), one for line 11.
    assert (
        "12 lines: 9 applied, 3 failed (lines 3, 6, 9); requeued 4 after handler process crashes"
    ) in result.stderr


def test_a_handler_that_cannot_start_again_fails_the_rest_with_the_reason(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "started-once"
    (tmp_path / "fragile.py").write_text(
        textwrap.dedent(
            f"""
            import os

            if os.path.exists({str(marker)!r}):
                raise RuntimeError("the model cache is corrupt")
            open({str(marker)!r}, "w").close()

            def handle(p):
                if p.get("die"):
                    os._exit(1)
                return p
            """
        )
    )
    result = asya_run(
        "fragile.handle",
        [{"n": 1}, {"n": 2, "die": True}, {"n": 3}, {"n": 4}],
        handler_path=tmp_path,
        state_dir=tmp_path / "state",
    )
    assert result.status == 1
    assert result.outputs == [{"n": 1}]
    assert "the model cache is corrupt" in result.stderr
    for line in (2, 3, 4):
        assert re.search(rf"line {line}: not run: no pod left \(.*model cache", result.stderr)
    assert "4 lines: 1 applied, 3 failed (lines 2, 3, 4)" in result.stderr


def test_a_killed_connector_is_restarted_and_the_message_that_hit_it_retried(
    tmp_path: Path,
) -> None:
    kills = {n: {"kill": True, "marker": str(tmp_path / f"killed-{n}")} for n in (5, 12)}
    result = asya_run(
        "queue_handlers.kill_connector",
        [{"n": n, **kills.get(n, {})} for n in range(1, 21)],
        handler_path=HANDLERS,
        state_dir=tmp_path,
        replicas=2,
    )
    assert result.status == 0, result.stderr
    assert sorted(o["n"] for o in result.outputs) == list(range(1, 21))
    assert _done(tmp_path) == set(range(1, 21))
    assert "connector fs-buffered-cas was killed by SIGKILL; restarting it" in result.stderr
    # The pod restarts a dead connector at once, so the write after each kill is usually
    # carried by the runtime's own retry; one that outlasts it is requeued.
    assert re.search(
        r"20 lines: 20 applied, 0 failed(; requeued \d+ after transient errors)?\n", result.stderr
    ), result.stderr


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, which it may stop and start (it keeps its data across)."""
    with DurableRedis() as server:
        yield server


def test_messages_ride_out_a_backend_restart(redis: RedisServer, tmp_path: Path) -> None:
    """Redis stopped and started again mid-run: every message is applied, none reported failed."""
    args = run_args(
        "queue_handlers.record",
        handler_path=HANDLERS,
        mounts=["/state=redis-buffered-cas"],
        replicas=2,
        extra=["--retry-base", "0.05", "--retry-cap", "0.5", "--max-transient-attempts", "60"],
    )
    env = {"REDIS_URL": redis.url, "STATE_PREFIX": f"ride-{tmp_path.name}/"}
    with LiveRun(args, env) as run:
        run.send({"n": n} for n in range(1, 11))
        run.wait_for_outputs(10)
        redis.stop()
        run.send({"n": n} for n in range(11, 31))  # arrive while Redis is down
        time.sleep(0.5)  # the outage
        redis.start()
        run.send({"n": n} for n in range(31, 41))
        result = run.finish()
    assert result.status == 0, result.stderr
    assert sorted(o["n"] for o in result.outputs) == list(range(1, 41))
    # A write that met the outage is retried by the runtime itself (same request
    # id); a read that met it requeues the message. Either way nothing fails.
    assert re.search(
        r"40 lines: 40 applied, 0 failed(; requeued \d+ after transient errors)?\n", result.stderr
    ), result.stderr
    check = asya_run(
        "queue_handlers.count_done",
        [{}],
        handler_path=HANDLERS,
        mounts=["/state=redis-buffered-cas"],
        env=env,
    )
    assert check.outputs == [{"done": list(range(1, 41))}], check.stderr


# Each of the 9 attempts first rides the runtime's own retry window (5 s).
@pytest.mark.slow
def test_a_backend_gone_for_good_fails_each_message_with_its_reason(
    redis: RedisServer, tmp_path: Path
) -> None:
    args = run_args(
        "queue_handlers.record",
        handler_path=HANDLERS,
        # timeout=2: each attempt's retries end after 2 s instead of the 5 s
        # RETRY_WINDOW, as a user who wants a dead backend to fail fast would set it.
        mounts=["/state=redis-buffered-cas,timeout=2"],
        extra=["--retry-base", "0", "--max-transient-attempts", "3"],
    )
    env = {"REDIS_URL": redis.url, "STATE_PREFIX": f"gone-{tmp_path.name}/"}
    with LiveRun(args, env) as run:
        run.send([{"n": 1}])
        run.wait_for_outputs(1)
        redis.stop()
        run.send({"n": n} for n in range(2, 5))
        result = run.finish()
    assert result.status == 1
    assert result.outputs == [{"n": 1}]
    for line in (2, 3, 4):
        assert re.search(
            rf"line {line}: gave up after 3 transient errors \(--max-transient-attempts\): "
            rf"ConnectionError: .*Redis is unreachable",
            result.stderr,
        ), result.stderr
    assert "4 lines: 1 applied, 3 failed (lines 2, 3, 4); requeued 6 after transient errors" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--max-attempts", "0"], "argument --max-attempts: must be at least 1, got 0"),
        (
            ["--max-transient-attempts", "-1"],
            "--max-transient-attempts: must be at least 1, got -1",
        ),
        (["--max-crashes", "two"], "--max-crashes: expected a whole number, got 'two'"),
        (
            ["--retry-base", "-0.5"],
            "--retry-base: must be a number of seconds, 0 or more, got -0.5",
        ),
        (["--retry-cap", "inf"], "--retry-cap: must be a number of seconds, 0 or more, got inf"),
        (
            ["--retry-base", "1", "--retry-cap", "0.5"],
            "--retry-cap (0.5) must not be below --retry-base (1)",
        ),
        (["--replicas", "0"], "--replicas: must be at least 1, got 0"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, option: list[str], message: str) -> None:
    result = asya_run(
        "queue_handlers.record",
        [{"n": 1}],
        handler_path=HANDLERS,
        state_dir=tmp_path,
        extra=option,
    )
    assert result.status == 2
    assert message in result.stderr
    assert result.outputs == []
    assert not (tmp_path / "state").exists(), "nothing may start on a usage error"


def test_a_mount_spec_sets_the_runtimes_timeout() -> None:
    from asya_state_cli.runner.mounts import MountSpecError, parse_mount

    mount = parse_mount("/state=redis-buffered-cas,timeout=2.5", ["redis-buffered-cas"])
    assert mount.runtime_entry() == "state:/state:write=buffered,timeout=2.5"
    assert parse_mount("/state", []).runtime_entry() == "state:/state:write=buffered"
    for bad in ("0", "-1", "soon", "inf"):
        with pytest.raises(MountSpecError, match="timeout must be a number of seconds above 0"):
            parse_mount(f"/state=redis-buffered-cas,timeout={bad}", ["redis-buffered-cas"])


def test_a_write_whose_outcome_is_unknown_is_reported_not_run_again(tmp_path: Path) -> None:
    """A queue would redeliver it; the runner says the write may have been applied instead.

    The runtime marks the error a mutating request ends with when an attempt
    may have been applied and its outcome stayed unknown for the mount's
    timeout (tests/reliability/test_outage_window.py produces one through a
    real outage); a plain ConnectionError is still requeued.
    """
    attempts = tmp_path / "attempts"
    (tmp_path / "doubtful.py").write_text(
        textwrap.dedent(
            f"""
            import errno

            from asya_state_runtime.errors import mark_outcome_unknown

            def handle(p):
                with open({str(attempts)!r}, "a") as f:
                    f.write(str(p["n"]) + "\\n")
                if p["n"] == 2:
                    exc = ConnectionAbortedError(
                        errno.ECONNABORTED, "outcome unknown, an earlier attempt may have been applied",
                        "/state/log",
                    )
                    mark_outcome_unknown(exc)
                    raise RuntimeError("could not append to the log") from exc
                if p["n"] == 3 and {str(attempts)!r} and open({str(attempts)!r}).read().count("3") == 1:
                    raise ConnectionError(errno.ECONNREFUSED, "briefly gone", "/state/log")
                return p
            """
        )
    )
    result = asya_run(
        "doubtful.handle",
        [{"n": 1}, {"n": 2}, {"n": 3}],
        handler_path=tmp_path,
        state_dir=tmp_path / "state",
        extra=["--retry-base", "0.01"],
    )
    assert result.status == 1
    assert sorted(o["n"] for o in result.outputs) == [1, 3]
    assert re.search(
        r"line 2: outcome unknown, not retried \(a write may have been applied\)", result.stderr
    )
    assert attempts.read_text().split().count("2") == 1  # never run again
    assert attempts.read_text().split().count("3") == 2  # the plain transient error was requeued
    assert "3 lines: 2 applied, 1 failed (line 2)" in result.stderr
