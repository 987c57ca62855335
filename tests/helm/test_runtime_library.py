"""The runtime hook library reaches pods from its image: no ConfigMap, no namespace list.

The chart installs nothing per namespace; the `helm test` pod gets the
library the way the function gives it to an actor (the same init container
and command, the same emptyDir, mounted read-only, first on PYTHONPATH).
Its check runs here against the library laid out as package/Dockerfile.runtime
puts it in the image and as the init container's ``cp`` copies it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asya_state_function.models import FunctionInput
from asya_state_function.sidecars import runtime_library_copier

from .conftest import Scenario
from .helpers import NAMESPACE, PACKAGE_DIR, ROOT, of_kind, only

COPIER = runtime_library_copier(FunctionInput())


def test_chart_installs_nothing_per_namespace(scenario: Scenario) -> None:
    assert not of_kind(scenario.manifests, "ConfigMap"), "the library travels in an image"
    assert {m.namespace for m in scenario.manifests} <= {None, NAMESPACE}


def _test_pod(scenario: Scenario) -> dict[str, Any]:
    pod = only(scenario.manifests, "Pod")
    assert pod.body["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec: dict[str, Any] = pod.body["spec"]
    return spec


def test_helm_test_pod_copies_the_library_like_an_actor_pod(scenario: Scenario) -> None:
    pod = _test_pod(scenario)
    (copier,) = pod["initContainers"]
    step_input = only(scenario.manifests, "Composition").body["spec"]["pipeline"]
    (state_proxy,) = [s for s in step_input if s["step"] == "state-proxy"]
    library = state_proxy["input"]["runtimeLibrary"]
    catalog = state_proxy["input"]["catalog"]
    expected_image = library.get("image") or (
        f"{catalog['registry']}/asya-state-proxy-runtime:{catalog['tag']}"
    )
    assert copier["image"] == expected_image, "the library the actors get is the one tested"
    assert copier["command"] == COPIER["command"]
    assert copier["volumeMounts"] == COPIER["volumeMounts"]
    (check,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in check["volumeMounts"]}
    assert mounts[library["mountPath"]] == {
        "name": "asya-state-runtime",
        "mountPath": library["mountPath"],
        "readOnly": True,
    }
    assert "subPath" not in str(check["volumeMounts"]), "subPath mounts never see upgrades"


def _image_layout(root: Path) -> None:
    """The runtime-library image's files, as package/Dockerfile.runtime copies them."""
    dockerfile = (PACKAGE_DIR / "Dockerfile.runtime").read_text()
    for source, destination in re.findall(r"^COPY (\S+) (\S+)$", dockerfile, re.M):
        target = root / destination.lstrip("/")
        sources = sorted(ROOT.glob(source))
        assert sources, f"Dockerfile.runtime copies {source}, which matches nothing"
        if destination.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            for path in sources:
                shutil.copy(path, target / path.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(sources[0], target)


def _rooted(value: str, root: Path) -> str:
    # String concatenation keeps a trailing "/." that pathlib would drop (it matters to cp).
    return f"{root}{value}" if value.startswith("/") else value


@pytest.mark.parametrize("scenario_name", ["defaults", "catalog-values.yaml"])
def test_helm_test_check_passes_on_the_copied_library(
    rendered: dict[str, Scenario], scenario_name: str, tmp_path: Path
) -> None:
    pod = _test_pod(rendered[scenario_name])
    image, volume = tmp_path / "image", tmp_path / "volume"
    _image_layout(image)
    volume.mkdir()
    (copier,) = pod["initContainers"]
    (target,) = [m["mountPath"] for m in copier["volumeMounts"]]
    # The init container's own command, with its paths under the image root and the volume.
    command = [
        str(volume) + "/" if arg.rstrip("/") == target else _rooted(arg, image)
        for arg in copier["command"]
    ]
    subprocess.run(command, check=True, timeout=60)
    (check,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in check["volumeMounts"]}
    pod_root = tmp_path / "pod"
    for name, path in mounts.items():
        where = pod_root / path.lstrip("/")
        where.parent.mkdir(parents=True, exist_ok=True)
        if name == "asya-state-runtime":
            where.symlink_to(volume)
        else:
            where.mkdir()
    env = {item["name"]: _rooted(item["value"], pod_root) for item in check["env"]}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ASYA_"))}
    assert check["command"][0] == "python3"
    result = subprocess.run(
        [sys.executable, *check["command"][1:]],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"helm test check failed:\n{result.stdout}\n{result.stderr}"
    assert "hooks active" in result.stdout
    # The library that ran is the copy, not the one installed in this venv.
    probe = subprocess.run(
        [sys.executable, "-c", "import asya_state_runtime; print(asya_state_runtime.__file__)"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(probe.stdout.strip()).resolve().is_relative_to(volume)
