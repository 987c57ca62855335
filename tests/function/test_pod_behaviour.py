"""What the rendered pod does when it runs: its containers' own commands and env, on real processes.

- Two actors rendered with the shorthand on one bucket keep their keys apart
  (the default STATE_PREFIX is ``<namespace>/<actor>/``).
- The sidecar's postStart hook and probes (a bare ``python3 -I -S`` check)
  answer as the kubelet needs: 0 once the socket answers, non-zero naming
  the socket otherwise, and the hook waits for a connector that starts late.
- A handler started without the hooks (``python -S``) cannot write its state
  to the container's disk: the mount path is a read-only empty volume.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asya_state_cli.commands.render import render
from asya_state_cli.connector_process import ConnectorProcess
from asya_state_cli.servers.moto import MotoServer

from . import seeds
from .helpers import ROOT

RUNTIME_DIR = ROOT / "runtime"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to 108 bytes: keep the directory short.
    path = Path(tempfile.mkdtemp(prefix="asya-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _pod(actor: dict[str, Any]) -> dict[str, Any]:
    rendered = render(actor)
    assert rendered.errors == []
    (deployment,) = rendered.resources
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def _sidecar(pod: dict[str, Any]) -> dict[str, Any]:
    sidecar: dict[str, Any] = next(
        c for c in pod["initContainers"] if c.get("restartPolicy") == "Always"
    )
    return sidecar


def _runtime_env(pod: dict[str, Any]) -> dict[str, str]:
    runtime = next(c for c in pod["containers"] if c["name"] == "asya-runtime")
    return {e["name"]: e["value"] for e in runtime["env"] if "value" in e}


def _handler(code: str, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as an actor process would: the rendered runtime env, the library on PYTHONPATH."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ASYA_"))}
    return subprocess.run(
        [sys.executable, *flags, "-c", code],
        env={**base, **env, "PYTHONPATH": str(RUNTIME_DIR)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_two_actors_on_one_bucket_never_see_each_others_keys(
    moto_server: MotoServer, short_dir: Path
) -> None:
    moto_server.create_bucket("shared-actors")
    shorthand = {"backend": "s3", "bucket": "shared-actors", "consistency": "cas"}
    pods = {}
    for name in ("alice", "bob"):
        actor = {
            **seeds.load(seeds.VIRTUAL_ACTORS),
            "metadata": {"name": name, "namespace": "agents"},
        }
        actor["spec"] = {**actor["spec"], "stateProxy": shorthand}
        pods[name] = _pod(actor)
    processes = []
    try:
        envs = {}
        for name, pod in pods.items():
            sidecar = _sidecar(pod)
            rendered = {e["name"]: e["value"] for e in sidecar["env"]}
            assert rendered["STATE_PREFIX"] == f"agents/{name}/"
            socket_dir = short_dir / name
            env = {
                **moto_server.connector_env("shared-actors"),
                "STATE_BUCKET": rendered["STATE_BUCKET"],
                "STATE_PREFIX": rendered["STATE_PREFIX"],
            }
            processes.append(
                ConnectorProcess("s3-buffered-cas", socket_dir / "state.sock", env).start()
            )
            envs[name] = {**_runtime_env(pod), "ASYA_STATE_PROXY_SOCKET_DIR": str(socket_dir)}
        wrote = _handler("open('/state/history.json', 'w').write('alice remembers')", envs["alice"])
        assert wrote.returncode == 0, wrote.stderr
        looked = _handler(
            "import json, os\n"
            "try:\n    open('/state/history.json').read()\n    found = True\n"
            "except FileNotFoundError:\n    found = False\n"
            "print(json.dumps({'found': found, 'listed': os.listdir('/state')}))",
            envs["bob"],
        )
        assert looked.returncode == 0, looked.stderr
        assert json.loads(looked.stdout) == {"found": False, "listed": []}
        again = _handler("print(open('/state/history.json').read())", envs["alice"])
        assert again.stdout.strip() == "alice remembers"
    finally:
        for process in processes:
            process.stop()
    keys = moto_server_keys(moto_server, "shared-actors")
    assert keys == ["agents/alice/history.json"]


def moto_server_keys(server: MotoServer, bucket: str) -> list[str]:
    import boto3

    env = server.connector_env(bucket)
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    try:
        listed = client.list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))
    finally:
        client.close()


# -- the sidecar's hook and probes ---------------------------------------------


def _checks(socket: Path) -> dict[str, list[str]]:
    """The hook and probe commands of a rendered sidecar, pointed at ``socket``."""
    actor = {
        **seeds.load(seeds.VIRTUAL_ACTORS),
        "metadata": {"name": "chat-agent", "namespace": "default"},
    }
    sidecar = _sidecar(_pod(actor))
    commands = {
        "hook": sidecar["lifecycle"]["postStart"]["exec"]["command"],
        "liveness": sidecar["livenessProbe"]["exec"]["command"],
    }
    rendered_socket = next(e["value"] for e in sidecar["env"] if e["name"] == "CONNECTOR_SOCKET")
    result = {}
    for name, command in commands.items():
        assert command[:4] == ["python3", "-I", "-S", "-c"], "a bare interpreter, no site"
        result[name] = [
            sys.executable,
            *command[1:5],
            *(str(socket) if arg == rendered_socket else arg for arg in command[5:]),
        ]
    return result


def _run(command: list[str], **changes: str) -> subprocess.CompletedProcess[str]:
    args = list(command)
    if "wait" in changes:
        args[-2] = changes["wait"]
    if "route" in changes:
        args[-1] = changes["route"]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_probe_passes_on_a_live_connector_and_names_the_socket_otherwise(
    short_dir: Path,
) -> None:
    socket = short_dir / "state.sock"
    commands = _checks(socket)
    absent = _run(commands["liveness"])
    assert absent.returncode == 1
    assert absent.stderr.startswith(f"{socket} /v1/health: ")
    with ConnectorProcess("memory", socket):
        assert _run(commands["liveness"]).returncode == 0
        assert _run(commands["hook"]).returncode == 0
        assert _run(commands["liveness"], route="/v1/ready").returncode == 0
        wrong = _run(commands["liveness"], route="/v1/no-such-route")
        assert wrong.returncode == 1
        assert "answered b'HTTP/1.1 404'" in wrong.stderr


def test_hook_holds_until_a_late_connector_answers(short_dir: Path) -> None:
    socket = short_dir / "state.sock"
    hook = _checks(socket)["hook"]
    outcome: dict[str, subprocess.CompletedProcess[str]] = {}
    waiter = threading.Thread(target=lambda: outcome.setdefault("hook", _run(hook, wait="60")))
    waiter.start()
    time.sleep(0.5)
    assert "hook" not in outcome, "the hook returned before any connector listened"
    with ConnectorProcess("memory", socket):
        waiter.join(timeout=60)
    assert outcome["hook"].returncode == 0, outcome["hook"].stderr


# -- the read-only mount path -------------------------------------------------


def _can_mount() -> bool:
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(
    shutil.which("unshare") is None or not _can_mount(),
    reason="needs a user and mount namespace (unshare -rm) to mount a read-only volume",
)
def test_a_handler_without_the_hooks_cannot_write_state_to_the_container_disk(
    short_dir: Path,
) -> None:
    actor = {
        **seeds.load(seeds.VIRTUAL_ACTORS),
        "metadata": {"name": "chat-agent", "namespace": "default"},
    }
    pod = _pod(actor)
    runtime = next(c for c in pod["containers"] if c["name"] == "asya-runtime")
    volumes = {v["name"]: v for v in pod["volumes"]}
    (guard,) = [m for m in runtime["volumeMounts"] if m["mountPath"] == "/state"]
    assert guard["readOnly"] is True
    assert "emptyDir" in volumes[guard["name"]], "an empty volume nobody else writes"
    # The pod's /state, as the kubelet mounts it: an empty read-only filesystem.
    state = short_dir / "state"
    state.mkdir()
    env = {
        **_runtime_env(pod),
        "ASYA_STATE_PROXY_MOUNTS": f"state:{state}:write=buffered",
        "ASYA_STATE_PROXY_SOCKET_DIR": str(short_dir),
    }
    write = f"open({str(state / 'history.json')!r}, 'w').write('remember me'); print('wrote')"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ASYA_"))}

    def in_pod(*flags: str) -> subprocess.CompletedProcess[str]:
        script = (
            f'mount -t tmpfs -o ro tmpfs {state} && exec {sys.executable} {" ".join(flags)} -c "$0"'
        )
        return subprocess.run(
            ["unshare", "-rm", "sh", "-c", script, write],
            env={**base, **env, "PYTHONPATH": str(RUNTIME_DIR)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    without_hooks = in_pod("-S")
    assert without_hooks.returncode != 0
    assert "OSError: [Errno 30] Read-only file system" in without_hooks.stderr
    assert not (state / "history.json").exists()
    with ConnectorProcess("memory", short_dir / "state.sock"):
        with_hooks = in_pod()
    assert with_hooks.returncode == 0, with_hooks.stderr
    assert with_hooks.stdout.strip() == "wrote", "with the hooks the write goes to the connector"
