"""``asya-state up``: the rendered pod, run locally."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asya_state_function.catalog import connector_for_image

from .helpers import EXAMPLES


def asya_up(
    actor: Path, payloads: list[dict[str, object]], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asya_state_cli", "up", str(actor), *args],
        input="".join(json.dumps(p) + "\n" for p in payloads),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=dict(os.environ),
        check=False,
    )


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/deliveryhero/asya-state-proxy-s3-buffered-lww:v1.0.0", "s3-buffered-lww"),
        ("asya/asya-state-proxy-redis-buffered-cas:0.1.0", "redis-buffered-cas"),
        (
            "registry:5000/team/asya-state-proxy-nats-kv-buffered-cas@sha256:abc",
            "nats-kv-buffered-cas",
        ),
        ("asya-state-proxy-fs-buffered-cas", "fs-buffered-cas"),
        ("example.com/my-own-connector:1", None),
        ("asya/asya-state-proxy-unknown:1", None),
    ],
)
def test_connector_is_read_from_the_image_name(image: str, expected: str | None) -> None:
    assert connector_for_image(image) == expected


def test_fs_actor_runs_with_its_pvc_path_remapped(tmp_path: Path) -> None:
    result = asya_up(
        EXAMPLES / "fs" / "actor.yaml",
        [{"user": "ada"}, {"user": "ada"}],
        "--state-dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["visits"] for line in result.stdout.splitlines()] == [1, 2]
    assert json.loads((tmp_path / "state" / "visits" / "ada.json").read_text()) == {"visits": 2}


def test_redis_actor_runs_with_supplied_secrets(
    connector_env_redis_buffered_cas: dict[str, str], tmp_path: Path
) -> None:
    redis_url = connector_env_redis_buffered_cas["REDIS_URL"]
    args = [
        "--handler-path",
        str(EXAMPLES / "fs"),
        "--env",
        f"REDIS_URL={redis_url}",
        "--env",
        f"STATE_PREFIX=up-{tmp_path.name}",
        "--replicas",
        "1",
    ]
    first = asya_up(EXAMPLES / "redis" / "actor.yaml", [{"user": "bob"}], *args)
    assert first.returncode == 0, first.stderr
    second = asya_up(EXAMPLES / "redis" / "actor.yaml", [{"user": "bob"}], *args)
    assert json.loads(second.stdout) == {"user": "bob", "visits": 2}


def test_values_only_a_cluster_resolves_are_named(tmp_path: Path) -> None:
    result = asya_up(EXAMPLES / "redis" / "actor.yaml", [])
    assert result.returncode == 2
    assert "env[REDIS_URL] comes from secretKeyRef" in result.stderr
    assert "--env REDIS_URL=VALUE" in result.stderr


def _actor(tmp_path: Path, connector: dict[str, object]) -> Path:
    actor = {
        "apiVersion": "asya.sh/v1alpha1",
        "kind": "AsyncActor",
        "metadata": {"name": "t", "namespace": "default"},
        "spec": {
            "image": "example.com/t:1",
            "handler": "handler.process",
            "stateProxy": [{"name": "state", "mount": {"path": "/state"}, "connector": connector}],
        },
    }
    path = tmp_path / "actor.yaml"
    path.write_text(yaml.safe_dump(actor))
    return path


def test_an_image_that_names_no_connector_is_refused(tmp_path: Path) -> None:
    result = asya_up(_actor(tmp_path, {"image": "example.com/my-own-connector:1"}), [])
    assert result.returncode == 2
    assert (
        "initContainers[asya-state-state].image 'example.com/my-own-connector:1'" in result.stderr
    )


def test_env_from_needs_explicit_values(tmp_path: Path) -> None:
    actor = _actor(
        tmp_path, {"type": "redis-buffered-cas", "envFrom": [{"secretRef": {"name": "redis"}}]}
    )
    result = asya_up(actor, [])
    assert result.returncode == 2
    assert "envFrom (secretRef/redis)" in result.stderr


def test_an_invalid_spec_prints_the_field_path(tmp_path: Path) -> None:
    result = asya_up(_actor(tmp_path, {"type": "no-such-connector"}), [])
    assert result.returncode == 1
    assert "spec.stateProxy[0]" in result.stderr
