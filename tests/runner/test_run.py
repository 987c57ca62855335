"""``asya-state run``: errors, requeue on CAS conflicts, replicas, clean and quiet shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests.fixtures.connectors import env_fixture_name

from .helpers import EXAMPLES, asya_run

CAS_CONNECTORS = [
    "fs-buffered-cas",
    "redis-buffered-cas",
    "nats-kv-buffered-cas",
    "s3-buffered-cas",
    "gcs-buffered-cas",
]
MESSAGES = 100


@pytest.fixture
def flaky_handler(tmp_path: Path) -> Path:
    (tmp_path / "flaky.py").write_text(
        textwrap.dedent(
            """
            def handle(p):
                if p.get("boom"):
                    raise KeyError("boom")
                return {"ok": p["n"]}
            """
        )
    )
    return tmp_path


def test_bad_lines_and_failing_handlers_are_reported_and_skipped(flaky_handler: Path) -> None:
    result = asya_run(
        "flaky.handle",
        [{"n": 1}, "not json", {"n": 2, "boom": True}, "[1, 2]", {"n": 3}],
        handler_path=flaky_handler,
        state_dir=flaky_handler / "state",
    )
    assert result.status == 1
    assert result.outputs == [{"ok": 1}, {"ok": 3}]
    assert "line 2: not valid JSON" in result.stderr
    assert "line 3: KeyError: 'boom'" in result.stderr
    assert "line 4: a payload must be a JSON object" in result.stderr
    assert "asya-state run: 5 lines: 2 applied, 3 failed (lines 2, 3, 4)\n" in result.stderr


def test_unknown_connector_and_bad_mount_are_usage_errors(flaky_handler: Path) -> None:
    result = asya_run(
        "flaky.handle", [], handler_path=flaky_handler, mounts=["/state=nope-connector"]
    )
    assert result.status == 2
    assert "unknown connector 'nope-connector'" in result.stderr
    relative = asya_run("flaky.handle", [], handler_path=flaky_handler, mounts=["state"])
    assert relative.status == 2
    assert "must be absolute" in relative.stderr


@pytest.mark.parametrize("connector", CAS_CONNECTORS)
def test_cas_counter_with_four_replicas_counts_exactly(
    connector: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env = dict(request.getfixturevalue(env_fixture_name(connector)))
    env["STATE_PREFIX"] = f"counter-{tmp_path.name}"
    result = asya_run(
        "counter.update_state_with_cas",
        [{"n": i} for i in range(MESSAGES)],
        handler_path=EXAMPLES / "cas-counter",
        mounts=[f"/state/shared={connector}"],
        state_dir=tmp_path,
        replicas=4,
        env=env,
        extra=["--max-attempts", "200", "--retry-base", "0.01", "--retry-cap", "0.2"],
    )
    assert result.status == 0, result.stderr
    assert len(result.outputs) == MESSAGES
    final = asya_run(
        "counter.read_count",
        [{}],
        handler_path=EXAMPLES / "cas-counter",
        mounts=[f"/state/shared={connector}"],
        state_dir=tmp_path,
        env=env,
    )
    assert final.outputs == [{"count": MESSAGES}], final.stderr
    assert sorted(o["new_count"] for o in result.outputs) == list(range(1, MESSAGES + 1))


def test_lww_counter_reports_lost_updates(tmp_path: Path) -> None:
    result = asya_run(
        "counter.update_state_with_cas",
        [{"n": i} for i in range(MESSAGES)],
        handler_path=EXAMPLES / "cas-counter",
        mounts=["/state/shared=fs-buffered-lww"],
        state_dir=tmp_path,
        replicas=4,
    )
    assert result.status == 0, result.stderr
    count = json.loads((tmp_path / "shared" / "counter.json").read_text())["count"]
    lost = MESSAGES - count
    assert 0 <= lost < MESSAGES
    # Every message "succeeded". Each value written is one more than a value read, so the
    # reported counts are exactly 1..highest; the stored count is one of them, but not
    # necessarily the highest: a slow writer can put back a lower value after a faster one.
    reported = {o["new_count"] for o in result.outputs}
    assert reported == set(range(1, max(reported) + 1))
    assert count in reported
    # Repeated counts are updates lost even before the last overwrite.
    assert len(result.outputs) - len(reported) <= lost
    print(f"LWW with 4 replicas: {count} of {MESSAGES} increments kept, {lost} lost")


def test_each_message_has_its_own_revision_scope(tmp_path: Path) -> None:
    """Message 2 overwrites a key message 1 read, after another pod wrote it: no conflict."""
    (tmp_path / "blind.py").write_text(
        textwrap.dedent(
            """
            import json, os, subprocess, sys

            PATH = "/state/blind.json"

            def handle(p):
                found = None
                if p["read"]:
                    with open(PATH) as f:
                        found = json.load(f)
                if p["other_pod_first"]:
                    code = f"open({PATH!r}, 'w').write('-1')"
                    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ)
                with open(PATH, "w") as f:
                    json.dump(p["n"], f)
                return {"read": found, "wrote": p["n"]}
            """
        )
    )
    messages = [
        {"read": False, "other_pod_first": False, "n": 1},
        {"read": True, "other_pod_first": False, "n": 2},
        {"read": False, "other_pod_first": True, "n": 3},
        {"read": True, "other_pod_first": False, "n": 4},
    ]
    result = asya_run(
        "blind.handle",
        messages,
        handler_path=tmp_path,
        mounts=["/state=fs-buffered-cas"],
        state_dir=tmp_path / "state",
        extra=["--max-attempts", "1"],  # a conflict would fail the message
    )
    assert result.status == 0, result.stderr
    assert [o["read"] for o in result.outputs] == [None, 1, None, 3]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_every_process_and_removes_sockets(
    tmp_path: Path, signum: signal.Signals
) -> None:
    (tmp_path / "slow.py").write_text("import time\ndef handle(p):\n    time.sleep(30)\n")
    before = set(Path("/tmp").glob("asya-run-*"))
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "asya_state_cli",
            "run",
            "slow.handle",
            "--handler-path",
            str(tmp_path),
            "--mount",
            "/state",
            "--mount",
            "/cache=memory",
            "--state-dir",
            str(tmp_path / "state"),
            "--replicas",
            "2",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert runner.stdin is not None
    runner.stdin.write('{"a": 1}\n{"a": 2}\n')
    runner.stdin.flush()
    deadline = time.monotonic() + 30
    children: list[psutil.Process] = []
    while time.monotonic() < deadline:
        children = psutil.Process(runner.pid).children(recursive=True)
        if len(children) >= 6:  # 2 pods x (2 connectors + 1 handler)
            break
        time.sleep(0.1)
    assert len(children) >= 6, [c.cmdline() for c in children]
    created = set(Path("/tmp").glob("asya-run-*")) - before
    assert created, "the runner keeps its sockets in a private /tmp/asya-run-* directory"
    time.sleep(0.5)
    runner.send_signal(signum)
    _, stderr = runner.communicate(timeout=30)
    assert runner.returncode == 128 + signum
    # Quiet: what happened and what was left unfinished, nothing about the abandoned messages.
    assert stderr.splitlines() == [
        f"asya-state run: {signum.name}; stopping pods",
        "asya-state run: interrupted after 2 lines: 0 applied, 0 failed, 2 not finished",
    ]
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    assert not [p for p in created if p.exists()], "the private socket directory was left behind"
