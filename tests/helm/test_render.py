"""The chart's Composition through the real function, via ``asya-state render --composition``.

The chart's whole output (as ``helm template`` prints it) is the Composition
file: with default values every example AsyncActor must compose the same pod
as with the Crossplane package's Composition; with other values the catalog,
the runtime library, the probes and the target Deployment from values must
reach the pod.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from asya_state_cli.main import main

from .conftest import Scenario
from .helpers import EXAMPLES_DIR, PACKAGE_COMPOSITION, of_kind

EXAMPLES = sorted(EXAMPLES_DIR.glob("*/actor.yaml"))


def _chart_file(scenario: Scenario, directory: Path) -> str:
    path = directory / f"{scenario.name}.yaml"
    path.write_text(yaml.safe_dump_all([m.body for m in scenario.manifests]))
    return str(path)


def _render(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    status = main(["render", *args])
    captured = capsys.readouterr()
    assert status == 0, f"asya-state render {' '.join(args)} failed:\n{captured.err}"
    return captured.out


def _pod(rendered: str) -> dict[str, Any]:
    (deployment,) = [d for d in yaml.safe_load_all(rendered) if d["kind"] == "Deployment"]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def _actor(example: str) -> str:
    return str(EXAMPLES_DIR / example / "actor.yaml")


def _render_args(actor: Path) -> list[str]:
    upstream = actor.with_name("upstream-deployment.yaml")
    return [str(actor), *(["--desired-deployment", str(upstream)] if upstream.exists() else [])]


@pytest.mark.parametrize("actor", EXAMPLES, ids=lambda p: p.parent.name)
def test_default_chart_renders_every_example_like_the_package(
    rendered: dict[str, Scenario], actor: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = _chart_file(rendered["defaults"], tmp_path)
    from_chart = _render(capsys, *_render_args(actor), "--composition", chart)
    from_package = _render(capsys, *_render_args(actor), "--composition", str(PACKAGE_COMPOSITION))
    assert from_chart == from_package


def test_catalog_from_values_reaches_the_sidecars(
    rendered: dict[str, Scenario], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = _chart_file(rendered["catalog-values.yaml"], tmp_path)
    images = {
        # An override by tag, an override by digest, and the mirror for the rest.
        "redis": "mirror.example.com/asya/redis-cas:0.1.1",
        "s3": "mirror.example.com/asya/s3@sha256:" + "0123456789abcdef" * 4,
        "nats-kv": "mirror.example.com/asya/asya-state-proxy-nats-kv-buffered-cas:0.1.0",
    }
    for example, image in images.items():
        pod = _pod(_render(capsys, _actor(example), "--composition", chart))
        (copier, sidecar) = pod["initContainers"]
        assert sidecar["image"] == image, example
        assert copier["image"] == "mirror.example.com/asya/runtime-library:0.1.0"
        assert pod["imagePullSecrets"] == [{"name": "mirror-pull"}]


def test_runtime_library_from_values_reaches_the_runtime_container(
    rendered: dict[str, Scenario], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = _chart_file(rendered["catalog-values.yaml"], tmp_path)
    pod = _pod(_render(capsys, _actor("redis"), "--composition", chart))
    (runtime,) = pod["containers"]
    env = {item["name"]: item.get("value") for item in runtime["env"]}
    assert env["PYTHONPATH"].split(":")[0] == "/opt/hooks"
    (library,) = [m for m in runtime["volumeMounts"] if m["mountPath"] == "/opt/hooks"]
    volume = next(v for v in pod["volumes"] if v["name"] == library["name"])
    assert "emptyDir" in volume, "no ConfigMap: the init container fills the volume"
    sidecar = pod["initContainers"][1]
    assert sidecar["lifecycle"]["postStart"]["exec"]["command"][6] == "60"
    assert "livenessProbe" not in sidecar
    assert sidecar["readinessProbe"]["exec"]["command"][-1] == "/v1/ready"


def test_helm_test_pod_mounts_the_library_like_an_actor(
    rendered: dict[str, Scenario], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The `helm test` check is only worth something if it sees what actors see."""
    scenario = rendered["catalog-values.yaml"]
    pod = _pod(_render(capsys, _actor("redis"), "--composition", _chart_file(scenario, tmp_path)))
    (runtime,) = pod["containers"]
    test_pod = of_kind(scenario.manifests, "Pod")[0].body["spec"]
    (check,) = test_pod["containers"]

    def layout(spec: dict[str, Any], container: dict[str, Any]) -> tuple[Any, ...]:
        copier = spec["initContainers"][0]
        (target,) = copier["volumeMounts"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == target["name"]]
        volume = next(v for v in spec["volumes"] if v["name"] == target["name"])
        return copier["image"], copier["command"], mount, volume

    assert layout(test_pod, check) == layout(pod, runtime)
    check_env = {item["name"]: item["value"] for item in check["env"]}
    runtime_env = {item["name"]: item.get("value") for item in runtime["env"]}
    assert check_env["PYTHONPATH"] == runtime_env["PYTHONPATH"].split(":")[0]
    assert check_env["ASYA_STATE_PROXY_SOCKET_DIR"] == runtime_env["ASYA_STATE_PROXY_SOCKET_DIR"]


def test_function_patches_the_deployment_an_earlier_step_composed(
    rendered: dict[str, Scenario], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = _chart_file(rendered["pipeline-values.yaml"], tmp_path)
    earlier = tmp_path / "earlier.yaml"
    earlier.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "redis-state", "namespace": "agents"},
                "spec": {
                    "selector": {"matchLabels": {"app": "redis-state"}},
                    "template": {
                        "metadata": {"labels": {"app": "redis-state"}},
                        "spec": {
                            "containers": [
                                {"name": "metrics", "image": "registry.example.com/metrics:1"},
                                {"name": "handler", "image": "registry.example.com/actor:1"},
                            ]
                        },
                    },
                },
            }
        )
    )
    out = _render(
        capsys, _actor("redis"), "--composition", chart, "--desired-deployment", str(earlier)
    )
    (deployment,) = yaml.safe_load_all(out)
    annotation = deployment["metadata"]["annotations"]["crossplane.io/composition-resource-name"]
    assert annotation == "actor-deployment"
    metrics, handler = deployment["spec"]["template"]["spec"]["containers"]
    assert "env" not in metrics
    env = {item["name"]: item.get("value") for item in handler["env"]}
    assert env["ASYA_STATE_PROXY_SOCKET_DIR"] == "/run/state"
    assert env["ASYA_STATE_PROXY_MOUNTS"].startswith("state:/state")
