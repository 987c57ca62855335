"""Every example renders to its expected-render.yaml, that render is sound, and each has a handler.

Regenerate the expected files after an intended change with
``ASYA_REGENERATE_RENDERS=1 .venv/bin/pytest tests/function/test_examples.py``
and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from asya_state_cli.commands.render import dump, render
from asya_state_function.catalog import connector_for_image
from asya_state_runtime.config import parse_mounts

from . import seeds
from .helpers import EXAMPLES, assert_valid_kubernetes

ACTORS = sorted(EXAMPLES.glob("*/actor.yaml"))
REGENERATE = os.environ.get("ASYA_REGENERATE_RENDERS") == "1"
UPSTREAM = "upstream-deployment.yaml"


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def _render(path: Path) -> list[dict[str, Any]]:
    """As ``asya-state render ACTOR [--desired-deployment upstream-deployment.yaml]``."""
    actor = _load(path)
    actor.setdefault("metadata", {}).setdefault("namespace", "default")
    upstream = path.with_name(UPSTREAM)
    desired = _load(upstream) if upstream.exists() else None
    rendered = render(actor, desired=desired)
    assert rendered.errors == [], f"{path}: {rendered.errors}"
    return rendered.resources


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {var["name"]: var.get("value") for var in container.get("env", [])}


def test_every_seed_and_backend_has_an_example() -> None:
    names = {path.parent.name for path in ACTORS}
    seed_examples = {
        "virtual-actors",
        "single-s3-mount",
        "weights-and-cache",
        "passthrough-weights",
    }
    assert seed_examples | {"s3", "gcs", "redis", "nats-kv", "fs"} <= names


@pytest.mark.parametrize(
    ("example", "seed"),
    [
        ("virtual-actors", seeds.VIRTUAL_ACTORS),
        ("single-s3-mount", seeds.STATE_PROXY_PAGE),
    ],
)
def test_seed_examples_are_the_seeds_verbatim(example: str, seed: str) -> None:
    assert _load(EXAMPLES / example / "actor.yaml") == seeds.load(seed)


@pytest.mark.parametrize(
    ("example", "snippet"),
    [("weights-and-cache", seeds.MULTIPLE_MOUNTS), ("passthrough-weights", seeds.PASSTHROUGH)],
)
def test_seed_snippets_are_verbatim(example: str, snippet: str) -> None:
    spec = _load(EXAMPLES / example / "actor.yaml")["spec"]
    assert spec["stateProxy"] == seeds.load(snippet)["stateProxy"]


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
    (composed,) = _render(path)
    deployment = (
        composed["spec"]["forProvider"]["manifest"] if composed["kind"] == "Object" else composed
    )
    assert_valid_kubernetes(deployment, path.parent.name)
    pod = deployment["spec"]["template"]["spec"]
    runtime = next(c for c in pod["containers"] if c["name"] == "asya-runtime")
    env = _env(runtime)
    # The runtime library parses the same value the function wrote.
    mounts = parse_mounts(env["ASYA_STATE_PROXY_MOUNTS"], env["ASYA_STATE_PROXY_SOCKET_DIR"])
    sidecars = {c["name"]: c for c in pod["initContainers"] if c.get("restartPolicy") == "Always"}
    assert [f"asya-state-{m.name}" for m in mounts] == list(sidecars)
    assert pod["initContainers"][0]["name"] == "asya-state-runtime-library"
    read_only = {m["mountPath"] for m in runtime["volumeMounts"] if m.get("readOnly")}
    for mount in mounts:
        sidecar = sidecars[f"asya-state-{mount.name}"]
        assert _env(sidecar)["CONNECTOR_SOCKET"] == mount.socket
        assert mount.path in read_only, f"{mount.path}: a write without the hooks must fail"
        assert connector_for_image(sidecar["image"]) is not None, (
            f"{sidecar['image']}: the local runner finds the connector from the image name"
        )


def _handler_file(directory: Path) -> tuple[Path, str] | None:
    """The module file and attribute the example's handler names (or its README points to)."""
    actor = _load(directory / "actor.yaml")
    handler = actor["spec"].get("handler")
    readme = (directory / "README.md").read_text()
    linked = re.findall(r"\]\((\.\./[\w-]+/[\w]+\.py)\)", readme)
    candidates = [*sorted(directory.glob("*.py")), *((directory / p).resolve() for p in linked)]
    if handler is None:
        # Upstream composes this actor's image; the README names the handler of the pattern.
        return (candidates[0], "") if candidates else None
    module, attribute = handler.split(".", 1)
    for candidate in candidates:
        if candidate.stem == module:
            return candidate, attribute
    return None


@pytest.mark.parametrize("path", ACTORS, ids=[p.parent.name for p in ACTORS])
def test_every_example_has_its_handler_and_a_command(path: Path) -> None:
    directory = path.parent
    assert (directory / "README.md").exists(), f"{directory.name} has no README"
    found = _handler_file(directory)
    assert found is not None, f"{directory.name}: no handler here and no link to one"
    module, attribute = found
    assert module.exists(), f"{directory.name}: {module} does not exist"
    source = module.read_text()
    for name in filter(None, attribute.split(".")):
        assert re.search(rf"^\s*(async )?(def|class) {name}\b", source, re.M), (
            f"{directory.name}: {module.name} defines no {name}"
        )
    assert ".venv/bin/asya-state " in (directory / "README.md").read_text(), (
        f"{directory.name}: its README shows no command"
    )
    index = (EXAMPLES / "README.md").read_text()
    row = next((line for line in index.splitlines() if f"[{directory.name}]" in line), "")
    assert "asya-state " in row, (
        f"examples/README.md has no line with a command for {directory.name}"
    )
