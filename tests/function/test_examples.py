"""Every examples/*/actor.yaml renders to its expected-render.yaml, and that render is sound.

Regenerate the expected files after an intended change with
``ASYA_REGENERATE_RENDERS=1 .venv/bin/pytest tests/function/test_examples.py``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from asya_state_cli.commands.render import dump, render
from asya_state_function.catalog import connector_for_image
from asya_state_runtime.config import parse_mounts

from .helpers import EXAMPLES, assert_valid_kubernetes

ACTORS = sorted(EXAMPLES.glob("*/actor.yaml"))
REGENERATE = os.environ.get("ASYA_REGENERATE_RENDERS") == "1"


def _render(path: Path) -> list[dict[str, Any]]:
    rendered = render(yaml.safe_load(path.read_text()))
    assert rendered.errors == [], f"{path}: {rendered.errors}"
    return rendered.resources


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {var["name"]: var.get("value") for var in container.get("env", [])}


def test_every_seed_and_backend_has_an_example() -> None:
    names = {path.parent.name for path in ACTORS}
    seeds_and_backends = {"single-s3-mount", "weights-and-cache", "passthrough-weights"}
    seeds_and_backends |= {"s3", "gcs", "redis", "nats-kv", "fs"}
    assert seeds_and_backends <= names


@pytest.mark.parametrize("path", ACTORS, ids=[p.parent.name for p in ACTORS])
def test_example_renders_to_its_expected_output(path: Path) -> None:
    resources = _render(path)
    expected_path = path.with_name("expected-render.yaml")
    if REGENERATE:
        expected_path.write_text(dump(resources))
    assert expected_path.exists(), f"{expected_path} is missing; set ASYA_REGENERATE_RENDERS=1"
    expected = list(yaml.safe_load_all(expected_path.read_text()))
    assert resources == expected, f"{path.parent.name}: the render changed; regenerate and review"


@pytest.mark.parametrize("path", ACTORS, ids=[p.parent.name for p in ACTORS])
def test_example_render_is_a_valid_pod_for_runtime_and_connectors(path: Path) -> None:
    (deployment,) = _render(path)
    assert_valid_kubernetes(deployment, path.parent.name)
    pod = deployment["spec"]["template"]["spec"]
    runtime = next(c for c in pod["containers"] if c["name"] == "asya-runtime")
    env = _env(runtime)
    # The runtime library parses the same value the function wrote.
    mounts = parse_mounts(env["ASYA_STATE_PROXY_MOUNTS"], env["ASYA_STATE_PROXY_SOCKET_DIR"])
    sidecars = {c["name"]: c for c in pod["initContainers"]}
    assert [f"asya-state-{m.name}" for m in mounts] == list(sidecars)
    for mount in mounts:
        sidecar = sidecars[f"asya-state-{mount.name}"]
        assert _env(sidecar)["CONNECTOR_SOCKET"] == mount.socket
        assert connector_for_image(sidecar["image"]) is not None, (
            f"{sidecar['image']}: the local runner finds the connector from the image name"
        )
