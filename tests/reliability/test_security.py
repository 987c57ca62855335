"""Security properties users and reviewers rely on, checked over every shipped example.

Secrets reach connectors only through valueFrom/envFrom, every connector
sidecar runs non-root on a read-only root filesystem with no privileges, and
no sidecar declares a TCP port unless its entry asks for metrics.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTORS = sorted(ROOT.glob("examples/*/actor.yaml"))
RENDERS = sorted(ROOT.glob("examples/*/expected-render.yaml"))
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|CREDS|ACCESS_KEY|PRIVATE)", re.IGNORECASE)
CREDENTIAL_IN_URL = re.compile(r"://[^/@\s]+:[^/@\s]+@")


def _entries(actor_path: Path) -> list[dict[str, Any]]:
    """The stateProxy entries; the one-mount shorthand counts as one entry with its env."""
    actor = yaml.safe_load(actor_path.read_text())
    state_proxy = actor["spec"].get("stateProxy", [])
    if isinstance(state_proxy, dict):
        env = list(state_proxy.get("env", []))
        env += [{"name": key, "value": state_proxy[key]} for key in ("url",) if key in state_proxy]
        return [{"name": "state", "connector": {"env": env}}]
    entries: list[dict[str, Any]] = state_proxy
    return entries


@pytest.mark.parametrize("actor_path", ACTORS, ids=[p.parent.name for p in ACTORS])
def test_examples_pass_secrets_only_by_reference(actor_path: Path) -> None:
    for entry in _entries(actor_path):
        for var in entry["connector"].get("env", []):
            if "value" not in var:
                continue
            where = f"{actor_path.parent.name}: {entry['name']}.env[{var['name']}]"
            assert not SECRET_NAME.search(var["name"]), (
                f"{where} carries a secret as a literal value"
            )
            assert not CREDENTIAL_IN_URL.search(str(var["value"])), (
                f"{where} embeds credentials in a URL"
            )


def _sidecars(render_path: Path) -> list[dict[str, Any]]:
    documents = list(yaml.safe_load_all(render_path.read_text()))
    # A Deployment, or one wrapped in a provider-kubernetes Object (upstream Asya's shape).
    deployments = [
        d["spec"]["forProvider"]["manifest"] if d.get("kind") == "Object" else d
        for d in documents
        if d
    ]
    pods = [d["spec"]["template"]["spec"] for d in deployments if d.get("kind") == "Deployment"]
    assert pods, f"{render_path} has no Deployment"
    return [
        c
        for pod in pods
        for c in pod.get("initContainers", [])
        if c.get("restartPolicy") == "Always"
    ]


@pytest.mark.parametrize("render_path", RENDERS, ids=[p.parent.name for p in RENDERS])
def test_connector_sidecars_are_locked_down(render_path: Path) -> None:
    sidecars = _sidecars(render_path)
    assert sidecars, f"{render_path.parent.name} renders no connector sidecar"
    for sidecar in sidecars:
        context = sidecar["securityContext"]
        assert context["runAsNonRoot"] is True, sidecar["name"]
        assert context["readOnlyRootFilesystem"] is True, sidecar["name"]
        assert context["allowPrivilegeEscalation"] is False, sidecar["name"]
        assert context["capabilities"]["drop"] == ["ALL"], sidecar["name"]
        assert "ports" not in sidecar, f"{sidecar['name']} opens a TCP port nobody asked for"


def test_examples_cover_every_backend_family() -> None:
    assert len(ACTORS) >= 10
    assert len(RENDERS) == len(ACTORS), "every example has its expected render"


def test_connector_images_run_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "package" / "Dockerfile.connector").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users, "the connector image sets no USER"
    # Every stage may switch to root to install, but must end as the unprivileged user.
    stages = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]
    for stage in stages:
        stage_users = re.findall(r"^USER\s+(\S+)", stage, re.MULTILINE)
        if stage_users:
            assert stage_users[-1].split(":")[0] == "65532", stage.splitlines()[0]
