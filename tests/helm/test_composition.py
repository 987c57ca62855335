"""The chart's Composition: the type it composes, the pipeline it builds, the input it passes.

The input carries the connector and runtime-library image catalog from
values, so an actor can name ``connector.type`` instead of an image, and
the step calls the Function by the chart's Function name, which is the name
Crossplane gives the function package as a Configuration's dependency.
"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import jsonschema
import pytest
import yaml

from asya_state_function.models import FunctionInput
from asya_state_function.validation import parse, validate_input
from tests.crossplane_names import dependency_name

from .conftest import Scenario
from .helpers import APP_VERSION, NAMESPACE, PACKAGE_INPUT_CRD, RELEASE, only, render

STEP = "state-proxy"
INPUT_SCHEMA = yaml.safe_load(PACKAGE_INPUT_CRD.read_text())["spec"]["versions"][0]["schema"][
    "openAPIV3Schema"
]


def _state_proxy_step(scenario: Scenario) -> dict[str, Any]:
    pipeline = only(scenario.manifests, "Composition").body["spec"]["pipeline"]
    (step,) = [s for s in pipeline if s["step"] == STEP]
    found: dict[str, Any] = step
    return found


def test_pipeline_runs_own_steps_around_the_function(scenario: Scenario) -> None:
    values = scenario.merged["composition"]
    spec = only(scenario.manifests, "Composition").body["spec"]
    assert spec["mode"] == "Pipeline"
    assert spec["compositeTypeRef"] == values["compositeTypeRef"]
    names = [s["step"] for s in spec["pipeline"]]
    expected = [
        *(s["step"] for s in values["stepsBefore"]),
        STEP,
        *(s["step"] for s in values["stepsAfter"]),
    ]
    assert names == expected
    assert spec["pipeline"][: len(values["stepsBefore"])] == values["stepsBefore"]
    assert _state_proxy_step(scenario)["functionRef"] == {
        "name": only(scenario.manifests, "Function").name
    }


def test_function_is_named_as_crossplane_names_the_dependency(scenario: Scenario) -> None:
    function = only(scenario.manifests, "Function")
    if scenario.merged["function"]["name"]:
        assert function.name == scenario.merged["function"]["name"]
    else:
        assert function.name == dependency_name(function.body["spec"]["package"]), (
            "the chart and a Configuration depending on the package would install it twice"
        )


@pytest.mark.parametrize(
    "package",
    [
        "docker.io/asya/asya-state-proxy-function:0.1.0",
        "registry.example.com/platform-builds/my-function@sha256:" + "ab" * 32,
        "localhost:5000/asya-state-proxy-function:1",
        "xpkg.crossplane.io/a.b/c_d/fn-x:v1",
        "busybox:1",
        "registry.example.com/" + "long-path-segment/" * 4 + "function:1",
    ],
)
def test_derived_function_name_follows_crossplanes_rule(chart: helm.Chart, package: str) -> None:
    manifests = render(chart, {"function": {"package": package}})
    assert only(manifests, "Function").name == dependency_name(package)


def test_composing_another_type_needs_the_xrd_off(chart: helm.Chart) -> None:
    other = {"compositeTypeRef": {"apiVersion": "asya.sh/v1alpha1", "kind": "XAsyncActor"}}
    with pytest.raises(helm.HelmError, match=r"set xrd\.enabled=false"):
        chart.render({"composition": other}, name=RELEASE, namespace=NAMESPACE)
    manifests = render(chart, {"composition": other, "xrd": {"enabled": False}})
    spec = only(manifests, "Composition").body["spec"]
    assert spec["compositeTypeRef"] == other["compositeTypeRef"]


def test_function_input_carries_catalog_and_runtime_library(scenario: Scenario) -> None:
    values = scenario.merged
    step_input = _state_proxy_step(scenario)["input"]
    images, connectors = values["images"], values["connectors"]
    assert step_input["apiVersion"] == "stateproxy.fn.asya.sh/v1beta1"
    assert step_input["kind"] == "Input"
    assert step_input["catalog"] == {
        "registry": connectors["registry"] or images["registry"],
        "tag": connectors["tag"] or images["tag"] or APP_VERSION,
        **({"images": connectors["images"]} if connectors["images"] else {}),
    }
    library = values["runtimeLibrary"]
    assert step_input["runtimeLibrary"] == {
        **({"image": library["image"]} if library["image"] else {}),
        "mountPath": library["mountPath"],
    }
    assert step_input.get("imagePullSecrets", []) == connectors["imagePullSecrets"]
    composition = values["composition"]
    assert step_input["deploymentResourceName"] == composition["deploymentResourceName"]
    assert step_input["runtimeContainerName"] == composition["runtimeContainerName"]
    assert step_input["socketDir"] == composition["socketDir"]
    assert step_input["probes"] == composition["probes"]
    assert step_input["defaults"] == composition["defaults"]


def test_function_and_its_input_crd_accept_the_input(scenario: Scenario) -> None:
    step_input = _state_proxy_step(scenario)["input"]
    jsonschema.validate(step_input, INPUT_SCHEMA)
    settings, errors = parse(FunctionInput, step_input, "input")
    assert settings is not None, [str(e) for e in errors]
    assert [str(e) for e in validate_input(settings)] == []
