"""The runtime hook library ConfigMap: identical to runtime/, in every actor namespace, usable.

The chart ships a copy of runtime/ (Helm reads only files inside the chart);
these tests fail when the copy drifts, and run the `helm test` pod's own
check against the rendered ConfigMap laid out the way kubelet mounts it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import Scenario
from .helpers import NAMESPACE, SYNC_HINT, Manifest, of_kind, runtime_files

CONFIGMAP_LIMIT = 1024 * 1024  # bytes the API server accepts in one ConfigMap


def _library_maps(scenario: Scenario) -> list[Manifest]:
    name = scenario.merged["runtimeLibrary"]["configMapName"]
    return [m for m in of_kind(scenario.manifests, "ConfigMap") if m.name == name]


def _expected_namespaces(scenario: Scenario) -> list[str]:
    namespaces = [NAMESPACE]
    for namespace in scenario.merged["runtimeLibrary"]["namespaces"]:
        if namespace not in namespaces:
            namespaces.append(namespace)
    return namespaces


def test_configmap_holds_exactly_the_runtime_files(scenario: Scenario) -> None:
    expected = runtime_files()
    for configmap in _library_maps(scenario):
        data = configmap.body["data"]
        assert sorted(data) == sorted(expected), (
            f"ConfigMap keys {sorted(data)} differ from runtime/ files {sorted(expected)}; {SYNC_HINT}"
        )
        drifted = [name for name, body in expected.items() if data[name].encode() != body]
        assert not drifted, f"the ConfigMap's {drifted} differs from runtime/; {SYNC_HINT}"


def test_configmap_fits_the_api_server_limit(rendered: dict[str, Scenario]) -> None:
    (configmap, *_) = _library_maps(rendered["defaults"])
    size = sum(len(body.encode()) for body in configmap.body["data"].values())
    assert size < CONFIGMAP_LIMIT, f"runtime library is {size} bytes, over {CONFIGMAP_LIMIT}"


def test_configmap_and_test_pod_in_every_listed_namespace(scenario: Scenario) -> None:
    expected = _expected_namespaces(scenario)
    assert [m.namespace for m in _library_maps(scenario)] == expected
    pods = of_kind(scenario.manifests, "Pod")
    assert [p.namespace for p in pods] == expected
    for pod in pods:
        assert pod.body["metadata"]["annotations"]["helm.sh/hook"] == "test"
        volumes = {v["name"]: v for v in pod.body["spec"]["volumes"]}
        config_map = volumes["runtime-library"]["configMap"]["name"]
        assert config_map == scenario.merged["runtimeLibrary"]["configMapName"]


def _materialise(pod: dict[str, Any], configmap: dict[str, Any], root: Path) -> dict[str, str]:
    """Lay the pod's volumes out under ``root`` as kubelet would; return its env, re-rooted."""
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    (container,) = pod["spec"]["containers"]
    for mount in container["volumeMounts"]:
        target = root / mount["mountPath"].lstrip("/")
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            assert volume["configMap"]["name"] == configmap["metadata"]["name"]
            if "subPath" in mount:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(configmap["data"][mount["subPath"]])
            else:
                target.mkdir(parents=True)
                for key, text in configmap["data"].items():
                    (target / key).write_text(text)
        else:
            target.mkdir(parents=True)
    # Every absolute path the pod's env names is a path inside the pod.
    return {
        item["name"]: str(root / item["value"].lstrip("/"))
        if item["value"].startswith("/")
        else item["value"]
        for item in container["env"]
    }


@pytest.mark.parametrize("scenario_name", ["defaults", "catalog-values.yaml"])
def test_helm_test_pod_check_passes_on_the_rendered_configmap(
    rendered: dict[str, Scenario], scenario_name: str, tmp_path: Path
) -> None:
    scenario = rendered[scenario_name]
    pod = of_kind(scenario.manifests, "Pod")[0].body
    configmap = _library_maps(scenario)[0].body
    env = _materialise(pod, configmap, tmp_path)
    command = pod["spec"]["containers"][0]["command"]
    assert command[0] == "python3"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ASYA_"))}
    result = subprocess.run(
        [sys.executable, *command[1:]],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"helm test check failed:\n{result.stdout}\n{result.stderr}"
    assert "hooks active" in result.stdout
    # The library that ran is the ConfigMap's copy, not the one installed in this venv.
    probe = subprocess.run(
        [sys.executable, "-c", "import asya_state_runtime; print(asya_state_runtime.__file__)"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(probe.stdout.strip()).is_relative_to(tmp_path)
