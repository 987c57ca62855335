"""``asya-state render``: the real function from the command line, errors with field paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from asya_state_cli.main import main

from . import seeds
from .helpers import EXAMPLES, PACKAGE, TAG, actor, deployment, mount

COMPOSITION = PACKAGE / "configuration" / "composition.yaml"


def _write(path: Path, *documents: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump_all(documents))
    return str(path)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asya_state_cli", "render", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _render(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[Any], str]:
    status = main(["render", *args])
    captured = capsys.readouterr()
    return status, list(yaml.safe_load_all(captured.out)), captured.err


def test_invalid_spec_exits_non_zero_with_the_field_path(tmp_path: Path) -> None:
    bad = actor(mount("cache", "/state/cache"), mount("more", "/state/cache/more"))
    result = _cli(_write(tmp_path / "actor.yaml", bad))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: spec.stateProxy[1].mount.path: '/state/cache/more' is inside '/state/cache' "
        "(spec.stateProxy[0]); state mounts must not nest"
    ]


def test_prints_the_composed_deployment_as_yaml() -> None:
    result = _cli(str(EXAMPLES / "weights-and-cache" / "actor.yaml"))
    assert result.returncode == 0, result.stderr
    (rendered,) = yaml.safe_load_all(result.stdout)
    assert rendered["kind"] == "Deployment"
    assert rendered["metadata"]["annotations"] == {
        "crossplane.io/composition-resource-name": "deployment"
    }
    init = rendered["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == [
        "asya-state-runtime-library",
        "asya-state-weights",
        "asya-state-cache",
    ]


def test_renders_the_virtual_actors_seed_verbatim_in_the_default_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "actor.yaml"
    path.write_text(seeds.VIRTUAL_ACTORS)
    status, documents, err = _render(capsys, str(path))
    assert status == 0, err
    assert err == ""
    (deployment_,) = documents
    assert deployment_["metadata"]["namespace"] == "default", "as kubectl apply would place it"
    (copier, sidecar) = deployment_["spec"]["template"]["spec"]["initContainers"]
    assert copier["name"] == "asya-state-runtime-library"
    assert {"name": "STATE_PREFIX", "value": "default/chat-agent/"} in sidecar["env"]


def test_patches_upstreams_object_wrapped_deployment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    actor_path = tmp_path / "actor.yaml"
    actor_path.write_text(seeds.STATE_PROXY_PAGE)
    upstream = _write(
        tmp_path / "upstream.yaml", seeds.upstream_deployment(seeds.load(seeds.STATE_PROXY_PAGE))
    )
    status, documents, err = _render(capsys, str(actor_path), "--desired-deployment", upstream)
    assert status == 0, err
    (composed,) = documents
    assert composed["kind"] == "Object"
    pod = composed["spec"]["forProvider"]["manifest"]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == [
        "asya-state-runtime-library",
        "asya-state-weights",
    ]
    assert err.startswith(
        "warning: spec.stateProxy[0].connector.image: "
        "ghcr.io/deliveryhero/asya-state-proxy-s3-buffered-lww:v1.0.0 is not from the connector "
        "catalog"
    )


def test_reads_the_input_from_a_composition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    composition = yaml.safe_load(COMPOSITION.read_text())
    step_input = composition["spec"]["pipeline"][0]["input"]
    step_input["catalog"] = {"registry": "mirror.example.com/asya", "tag": "7.0.0"}
    xrd = {"apiVersion": "apiextensions.crossplane.io/v2", "kind": "CompositeResourceDefinition"}
    other = {
        **composition,
        "spec": {**composition["spec"], "compositeTypeRef": {"apiVersion": "x/v1", "kind": "X"}},
    }
    source = _write(tmp_path / "chart.yaml", xrd, other, composition)
    status, documents, _ = _render(
        capsys, str(EXAMPLES / "redis" / "actor.yaml"), "--composition", source
    )
    assert status == 0
    (copier, sidecar) = documents[0]["spec"]["template"]["spec"]["initContainers"]
    assert sidecar["image"] == "mirror.example.com/asya/asya-state-proxy-redis-buffered-cas:7.0.0"
    assert copier["image"] == "mirror.example.com/asya/asya-state-proxy-runtime:7.0.0"


def test_the_packaged_composition_renders_like_the_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    actor_path = str(EXAMPLES / "nats-kv" / "actor.yaml")
    status, with_composition, _ = _render(capsys, actor_path, "--composition", str(COMPOSITION))
    assert status == 0
    status, with_defaults, _ = _render(capsys, actor_path)
    assert status == 0
    assert with_composition == with_defaults
    image = with_defaults[0]["spec"]["template"]["spec"]["initContainers"][1]["image"]
    assert image == f"docker.io/asya/asya-state-proxy-nats-kv-buffered-cas:{TAG}"


def test_patches_a_given_deployment_and_reports_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    earlier = deployment({"name": "main", "image": "a:1"}, {"name": "metrics", "image": "m:1"})
    status, documents, err = _render(
        capsys,
        _write(tmp_path / "actor.yaml", actor(mount("s", "/state", type="s3-buffered-lww"))),
        "--input",
        _write(
            tmp_path / "input.yaml",
            {
                "apiVersion": "stateproxy.fn.asya.sh/v1beta1",
                "kind": "Input",
                "runtimeContainerName": "main",
            },
        ),
        "--desired-deployment",
        _write(tmp_path / "deployment.yaml", earlier),
    )
    assert status == 0
    pod = documents[0]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["main", "metrics"]
    assert pod["containers"][1] == {"name": "metrics", "image": "m:1"}
    assert err.startswith(
        "warning: spec.stateProxy[0].connector: s3-buffered-lww is last-writer-wins"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.yaml"], "asya-state render: missing.yaml: No such file or directory"),
        (
            [str(COMPOSITION)],
            f"asya-state render: {COMPOSITION}: expected one AsyncActor document, found 0",
        ),
        (
            [
                str(EXAMPLES / "s3" / "actor.yaml"),
                "--composition",
                str(EXAMPLES / "s3" / "actor.yaml"),
            ],
            f"asya-state render: {EXAMPLES / 's3' / 'actor.yaml'}: no Composition for "
            "asya.sh/v1alpha1 AsyncActor",
        ),
    ],
    ids=["missing-file", "not-an-actor", "no-composition"],
)
def test_unusable_files_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _render(capsys, *args)
    assert status == 2
    assert err.strip() == message


def test_reports_state_proxy_ready_for_an_observed_deployment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    observed = {**deployment({"name": "asya-runtime", "image": "a:1"}), "status": {"replicas": 2}}
    status, _, err = _render(
        capsys,
        str(EXAMPLES / "redis" / "actor.yaml"),
        "--observed-deployment",
        _write(tmp_path / "observed.yaml", observed),
    )
    assert status == 0
    assert err.splitlines() == [
        "condition: StateProxyReady=False (RollingOut): Deployment 'deployment' has no sidecar "
        "asya-state-state yet"
    ]
