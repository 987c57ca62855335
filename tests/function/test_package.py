"""The packages agree with the function: names, schemas, CEL rules, Dockerfile targets.

The XRD's schema and CEL rules are checked against the same specs the
function accepts and refuses (jsonschema for the OpenAPI part, a CEL
interpreter for x-kubernetes-validations), so the API server and the
function tell a user the same thing.
"""

from __future__ import annotations

import re
from typing import Any

import celpy
import jsonschema
import pytest
import yaml

from asya_state_connectors.registry import CONNECTORS as REGISTRY
from asya_state_connectors.registry import EXTRAS
from asya_state_function.catalog import CONNECTORS
from asya_state_function.models import FunctionInput, StateProxyEntry
from asya_state_function.validation import parse, validate_input

from .helpers import EXAMPLES, PACKAGE, TAG, actor, mount, request, run

XRD = yaml.safe_load((PACKAGE / "configuration" / "definition.yaml").read_text())
COMPOSITION = yaml.safe_load((PACKAGE / "configuration" / "composition.yaml").read_text())
INPUT_CRD = yaml.safe_load((PACKAGE / "input" / "stateproxy.fn.asya.sh_inputs.yaml").read_text())
FUNCTION = yaml.safe_load((PACKAGE / "crossplane.yaml").read_text())
CONFIGURATION = yaml.safe_load((PACKAGE / "configuration" / "crossplane.yaml").read_text())
DOCKERFILE = (PACKAGE / "Dockerfile.connector").read_text()

XR_SCHEMA = XRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
ENTRY_SCHEMA = XR_SCHEMA["properties"]["spec"]["properties"]["stateProxy"]["items"]
INPUT_SCHEMA = INPUT_CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
STEP_INPUT = COMPOSITION["spec"]["pipeline"][0]["input"]


def _aliases(model: type[Any]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_function_knows_exactly_the_registry_connectors() -> None:
    assert set(CONNECTORS) == set(REGISTRY)


def test_schemas_list_exactly_the_known_connectors() -> None:
    enum = ENTRY_SCHEMA["properties"]["connector"]["properties"]["type"]["enum"]
    assert sorted(enum) == sorted(CONNECTORS)
    images = INPUT_SCHEMA["properties"]["catalog"]["properties"]["images"]
    rule = images["x-kubernetes-validations"][0]["rule"]
    assert sorted(re.findall(r"'([a-z0-9-]+)'", rule)) == sorted(CONNECTORS)


def test_schemas_have_the_models_fields() -> None:
    assert set(ENTRY_SCHEMA["properties"]) == _aliases(StateProxyEntry)
    assert set(INPUT_SCHEMA["properties"]) == _aliases(FunctionInput)


def test_composition_runs_the_function_with_a_valid_input() -> None:
    assert COMPOSITION["spec"]["compositeTypeRef"] == {
        "apiVersion": f"{XRD['spec']['group']}/{XRD['spec']['versions'][0]['name']}",
        "kind": XRD["spec"]["names"]["kind"],
    }
    assert XRD["spec"]["scope"] == "Namespaced"
    assert XRD["spec"]["defaultCompositionRef"]["name"] == COMPOSITION["metadata"]["name"]
    assert COMPOSITION["spec"]["pipeline"][0]["functionRef"]["name"] == FUNCTION["metadata"]["name"]
    settings, errors = parse(FunctionInput, STEP_INPUT, "input")
    assert errors == []
    assert settings is not None
    assert validate_input(settings) == []
    assert settings.catalog.tag == TAG, "the Composition pins the connector images of this release"
    jsonschema.validate(STEP_INPUT, INPUT_SCHEMA)
    identity = {key: STEP_INPUT[key] for key in ("apiVersion", "kind")}
    assert settings == FunctionInput.model_validate(identity), (
        "the packaged Composition spells out the function's defaults"
    )


def test_configuration_depends_on_this_function() -> None:
    assert FUNCTION["apiVersion"] == "meta.pkg.crossplane.io/v1"
    assert FUNCTION["kind"] == "Function"
    assert CONFIGURATION["kind"] == "Configuration"
    (dependency,) = CONFIGURATION["spec"]["dependsOn"]
    assert dependency["package"].endswith("/asya-state-proxy-function")


def test_one_connector_image_target_per_name_on_a_shared_base() -> None:
    stages = {
        name: parent for parent, name in re.findall(r"^FROM (\S+) AS (\S+)$", DOCKERFILE, re.M)
    }
    entrypoints = dict(
        re.findall(
            r"^FROM \S+ AS (\S+)\nENTRYPOINT \[\"asya-state\", \"connector\", \"(\S+)\"\]$",
            DOCKERFILE,
            re.M,
        )
    )
    assert entrypoints == {name: name for name in CONNECTORS}
    for name in CONNECTORS:
        module = REGISTRY[name].split(":")[0]
        backend = stages[name]
        if backend == "base":
            assert EXTRAS[module] == "connector", name
        else:
            assert stages[backend] == "base", f"{backend} builds on the shared base"
            extra = re.search(rf"FROM base AS {backend}\n.*?\[(\w+)\]\"", DOCKERFILE, re.S)
            assert extra is not None
            assert extra.group(1) == EXTRAS[module], f"{name} installs its backend's extra"
    script = (PACKAGE / "build-images.sh").read_text()
    assert set(
        re.findall(
            r"[a-z0-9]+(?:-[a-z0-9]+)+|memory", script.split("connectors=(")[1].split(")")[0]
        )
    ) == set(CONNECTORS)


# -- the XRD versus the function ----------------------------------------------

_CEL = celpy.Environment()


def _cel_failures(schema: dict[str, Any], value: Any) -> list[str]:
    """Messages of the x-kubernetes-validations rules ``value`` breaks, depth first."""
    failures: list[str] = []
    for rule in schema.get("x-kubernetes-validations", []):
        program = _CEL.program(_CEL.compile(rule["rule"]))
        if not program.evaluate({"self": celpy.json_to_cel(value)}):
            failures.append(rule["message"])
    if isinstance(value, dict):
        for key, item in value.items():
            if key in schema.get("properties", {}):
                failures.extend(_cel_failures(schema["properties"][key], item))
    if isinstance(value, list) and "items" in schema:
        for item in value:
            failures.extend(_cel_failures(schema["items"], item))
    return failures


def _xrd_rejects(spec: dict[str, Any]) -> list[str]:
    composite = {"spec": spec}
    problems = [
        error.message for error in jsonschema.Draft7Validator(XR_SCHEMA).iter_errors(composite)
    ]
    return problems + _cel_failures(XR_SCHEMA, composite)


EXAMPLE_SPECS = {
    path.parent.name: yaml.safe_load(path.read_text())["spec"]
    for path in sorted(EXAMPLES.glob("*/actor.yaml"))
}


@pytest.mark.parametrize("name", list(EXAMPLE_SPECS))
def test_xrd_accepts_every_example(name: str) -> None:
    assert _xrd_rejects(EXAMPLE_SPECS[name]) == []


def _entry(**fields: Any) -> dict[str, Any]:
    return actor({**mount("cache", "/state/cache"), **fields})["spec"]


def _env(*items: dict[str, Any]) -> dict[str, Any]:
    return _entry(connector={"type": "redis-buffered-cas", "env": list(items)})


def _paths(*values: str) -> dict[str, Any]:
    return actor(*(mount(f"m{i}", value) for i, value in enumerate(values)))["spec"]


REFUSED_BY_BOTH = {
    "bad-name": actor(mount("Cache", "/state"))["spec"],
    "long-name": actor(mount("n" * 49, "/state"))["spec"],
    "relative-path": _paths("state"),
    "colon-path": _paths("/a:b"),
    "trailing-slash": _paths("/state/"),
    "dot-segment": _paths("/state/./x"),
    "dotdot-segment": _paths("/state/../x"),
    "duplicate-path": _paths("/state", "/state"),
    "nested-path": _paths("/state", "/state/cache"),
    "nested-path-reversed": _paths("/state/cache", "/state"),
    "write-mode": _entry(writeMode="stream"),
    "no-connector-source": _entry(connector={}),
    "two-connector-sources": _entry(connector={"type": "memory", "image": "x:1"}),
    "unknown-type": _entry(connector={"type": "s4"}),
    "reserved-env": _env({"name": "CONNECTOR_SOCKET", "value": "x"}),
    "bad-env-name": _env({"name": "1X", "value": "x"}),
    "value-and-value-from": _env(
        {"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}
    ),
    "two-value-sources": _env(
        {
            "name": "A",
            "valueFrom": {
                "fieldRef": {"fieldPath": "x"},
                "secretKeyRef": {"name": "s", "key": "k"},
            },
        }
    ),
    "no-value-source": _env({"name": "A", "valueFrom": {}}),
    "env-from-both": _entry(
        connector={
            "type": "memory",
            "envFrom": [{"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}],
        }
    ),
    "quantity": _entry(connector={"type": "memory", "resources": {"limits": {"memory": "1GB"}}}),
    "metrics-port-privileged": _entry(connector={"type": "memory", "metricsPort": 80}),
    "metrics-port-too-big": _entry(connector={"type": "memory", "metricsPort": 70000}),
    "negative-replicas": actor(replicas=-1)["spec"],
    "bad-handler": actor(handler="agent")["spec"],
}


@pytest.mark.parametrize("name", list(REFUSED_BY_BOTH))
async def test_xrd_and_function_refuse_the_same_specs(name: str) -> None:
    spec = REFUSED_BY_BOTH[name]
    assert _xrd_rejects(spec), f"{name}: the API server would accept it"
    out = await run(request({"metadata": {"name": "a"}, "spec": spec}))
    assert out.fatal, f"{name}: the function would accept it"
