"""The chart's Composition: the pipeline it builds and the function input it passes.

The input carries what the chart installs (the runtime library ConfigMap)
and the connector image catalog from values, so an actor can name
``connector.type`` instead of an image.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import yaml

from asya_state_function.models import FunctionInput
from asya_state_function.validation import parse, validate_input

from .conftest import Scenario
from .helpers import APP_VERSION, PACKAGE_INPUT_CRD, only

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
    assert spec["compositeTypeRef"] == {"apiVersion": "asya.sh/v1alpha1", "kind": "AsyncActor"}
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
    assert step_input["runtimeLibrary"] == {
        "configMapName": values["runtimeLibrary"]["configMapName"],
        "mountPath": values["runtimeLibrary"]["mountPath"],
    }
    composition = values["composition"]
    assert step_input["deploymentResourceName"] == composition["deploymentResourceName"]
    assert step_input["runtimeContainerName"] == composition["runtimeContainerName"]
    assert step_input["socketDir"] == composition["socketDir"]
    assert step_input["defaults"] == composition["defaults"]


def test_function_and_its_input_crd_accept_the_input(scenario: Scenario) -> None:
    step_input = _state_proxy_step(scenario)["input"]
    jsonschema.validate(step_input, INPUT_SCHEMA)
    settings, errors = parse(FunctionInput, step_input, "input")
    assert settings is not None, [str(e) for e in errors]
    assert [str(e) for e in validate_input(settings)] == []
