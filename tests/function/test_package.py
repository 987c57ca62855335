"""The packages agree with the function: names, schemas, rules, Dockerfile targets.

The XRD's schema is checked against the same specs the function accepts and
refuses (jsonschema for the OpenAPI part, a CEL interpreter for
x-kubernetes-validations where the API server would run them), so the API
server and the function tell a user the same thing; the few rules only the
function can check are listed with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import celpy
import jsonschema
import pytest
import yaml

from asya_state_connectors.registry import CONNECTORS as REGISTRY
from asya_state_connectors.registry import EXTRAS
from asya_state_function.catalog import CONNECTORS
from asya_state_function.models import (
    ActorSpec,
    FunctionInput,
    StateProxyEntry,
    StateProxyShorthand,
)
from asya_state_function.sidecars import LIBRARY_SOURCE, runtime_library_copier
from asya_state_function.validation import parse, validate_input
from tests.crossplane_names import dependency_name

from . import seeds
from .helpers import EXAMPLES, PACKAGE, TAG, actor, mount, request, run

XRD = yaml.safe_load((PACKAGE / "configuration" / "definition.yaml").read_text())
COMPOSITION = yaml.safe_load((PACKAGE / "configuration" / "composition.yaml").read_text())
INPUT_CRD = yaml.safe_load((PACKAGE / "input" / "stateproxy.fn.asya.sh_inputs.yaml").read_text())
FUNCTION = yaml.safe_load((PACKAGE / "crossplane.yaml").read_text())
CONFIGURATION = yaml.safe_load((PACKAGE / "configuration" / "crossplane.yaml").read_text())
DOCKERFILE = (PACKAGE / "Dockerfile.connector").read_text()

XR_SCHEMA = XRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
SPEC_SCHEMA = XR_SCHEMA["properties"]["spec"]
STATE_PROXY_SCHEMA = SPEC_SCHEMA["properties"]["stateProxy"]
ENTRY_SCHEMA = STATE_PROXY_SCHEMA["items"]
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
    assert set(STATE_PROXY_SCHEMA["properties"]) == _aliases(StateProxyShorthand)
    assert set(SPEC_SCHEMA["properties"]) == _aliases(ActorSpec)
    assert set(INPUT_SCHEMA["properties"]) == _aliases(FunctionInput)


@pytest.mark.parametrize(
    ("package", "name"),
    [
        # The examples Crossplane's own documentation and issue tracker give.
        (
            "xpkg.crossplane.io/crossplane-contrib/function-patch-and-transform",
            "crossplane-contrib-function-patch-and-transform",
        ),
        ("registry.example.com/platform-builds/my-function", "platform-builds-my-function"),
        ("docker.io/asya/asya-state-proxy-function", "asya-asya-state-proxy-function"),
        ("localhost:5000/asya-state-proxy-function", "asya-state-proxy-function"),
        ("busybox", "library-busybox"),
    ],
)
def test_crossplane_dependency_naming_rule(package: str, name: str) -> None:
    assert dependency_name(package) == name


def test_composition_calls_the_function_by_the_name_crossplane_gives_the_dependency() -> None:
    (dependency,) = CONFIGURATION["spec"]["dependsOn"]
    assert dependency["kind"] == "Function"
    step = COMPOSITION["spec"]["pipeline"][0]
    assert step["functionRef"]["name"] == dependency_name(dependency["package"]), (
        "a Configuration installed on its own would call a Function that does not exist"
    )
    assert re.match(r"^[a-z0-9.-]+\.[a-z]+/", dependency["package"]), (
        "Crossplane v2 needs a registry host in package references"
    )


def test_composition_runs_the_function_with_a_valid_input() -> None:
    assert COMPOSITION["spec"]["compositeTypeRef"] == {
        "apiVersion": f"{XRD['spec']['group']}/{XRD['spec']['versions'][0]['name']}",
        "kind": XRD["spec"]["names"]["kind"],
    }
    assert XRD["spec"]["scope"] == "Namespaced"
    assert XRD["spec"]["defaultCompositionRef"]["name"] == COMPOSITION["metadata"]["name"]
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


def test_input_crd_defaults_are_the_functions() -> None:
    defaults = FunctionInput.model_validate({})
    props = INPUT_SCHEMA["properties"]
    assert props["catalog"]["properties"]["registry"]["default"] == defaults.catalog.registry
    probes = props["probes"]["properties"]
    assert probes["startupTimeoutSeconds"]["default"] == defaults.probes.startup_timeout_seconds
    assert probes["livenessPeriodSeconds"]["default"] == defaults.probes.liveness_period_seconds
    assert probes["readiness"]["default"] == defaults.probes.readiness
    spill = props["defaults"]["properties"]["spillSizeLimit"]["default"]
    assert spill == defaults.defaults.spill_size_limit


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
        module = REGISTRY[name].split(":")[0].split(".")[0]
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
    assert "Dockerfile.runtime" in script


def test_runtime_image_holds_the_library_where_the_init_container_copies_from() -> None:
    dockerfile = (PACKAGE / "Dockerfile.runtime").read_text()
    copies = dict(
        (destination, source)
        for source, destination in re.findall(r"^COPY (\S+) (\S+)$", dockerfile, re.M)
    )
    assert copies == {
        f"{LIBRARY_SOURCE}/asya_state_runtime/": "runtime/asya_state_runtime/*.py",
        f"{LIBRARY_SOURCE}/sitecustomize.py": "runtime/sitecustomize.py",
    }
    command = runtime_library_copier(FunctionInput())["command"]
    assert command[:3] == ["cp", "-R", f"{LIBRARY_SOURCE}/."]
    assert re.search(r"^USER 65532:65532$", dockerfile, re.M), "the copy runs as the sidecar user"


# -- the XRD is a structural schema the API server accepts ---------------------

NESTED_FORBIDDEN = ("type", "description", "default", "nullable", "additionalProperties")


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Every schema node of the skeleton: (path, node, whether CEL can see it)."""
    yield path, schema, True
    visible = bool(schema.get("type")) or bool(schema.get("x-kubernetes-int-or-string"))
    for key, child in (schema.get("properties") or {}).items():
        for sub_path, node, seen in _nodes(child, f"{path}.{key}"):
            yield sub_path, node, seen and visible
    if isinstance(schema.get("items"), dict):
        for sub_path, node, seen in _nodes(schema["items"], f"{path}[]"):
            yield sub_path, node, seen and visible
    if isinstance(schema.get("additionalProperties"), dict):
        for sub_path, node, seen in _nodes(schema["additionalProperties"], f"{path}{{}}"):
            yield sub_path, node, seen and visible


def _nested(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(key) or []:
            yield branch
            yield from _nested(branch)
    if isinstance(node.get("not"), dict):
        yield node["not"]
        yield from _nested(node["not"])


@pytest.mark.parametrize(
    "schema",
    [XR_SCHEMA, INPUT_SCHEMA],
    ids=["asyncactor-xrd", "input-crd"],
)
def test_schema_is_structural(schema: dict[str, Any]) -> None:
    for path, node, visible in _nodes(schema):
        where = path or "<root>"
        typed = node.get("type") or node.get("x-kubernetes-int-or-string")
        assert typed or node.get("x-kubernetes-preserve-unknown-fields"), f"{where}: no type"
        if "x-kubernetes-list-type" in node:
            assert node.get("type") == "array", f"{where}: list-type needs type array"
        if node.get("x-kubernetes-validations"):
            assert visible, f"{where}: CEL rules under a field without a type never run"
        for branch in _nested(node):
            if branch in node.get("anyOf", []) and node.get("x-kubernetes-int-or-string"):
                continue
            forbidden = [key for key in NESTED_FORBIDDEN if key in branch]
            assert not forbidden, f"{where}: {forbidden} inside allOf/anyOf/oneOf/not"
            for key in branch.get("properties") or {}:
                assert key in (node.get("properties") or {}), (
                    f"{where}: {key!r} in a junctor is not in the schema's own properties"
                )


# -- the XRD versus the function ----------------------------------------------

_CEL = celpy.Environment()


def _cel_failures(schema: dict[str, Any], value: Any) -> list[str]:
    """Messages of the x-kubernetes-validations rules ``value`` breaks, as the API server runs them.

    The API server runs no rule at or below a field without a type.
    """
    if not (schema.get("type") or schema.get("x-kubernetes-int-or-string")):
        return []
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


def _unique_list_map_keys(schema: dict[str, Any], value: Any) -> list[str]:
    """The API server's x-kubernetes-list-type: map check (duplicate keys are refused)."""
    failures: list[str] = []
    if isinstance(value, list) and schema.get("x-kubernetes-list-type") == "map":
        keys = [tuple(item.get(k) for k in schema["x-kubernetes-list-map-keys"]) for item in value]
        if len(set(keys)) != len(keys):
            failures.append("duplicate list-map key")
    if isinstance(value, dict):
        for key, item in value.items():
            if key in schema.get("properties", {}):
                failures.extend(_unique_list_map_keys(schema["properties"][key], item))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            failures.extend(_unique_list_map_keys(schema["items"], item))
    return failures


def _xrd_rejects(spec: dict[str, Any]) -> list[str]:
    composite = {"spec": spec}
    problems = [
        error.message for error in jsonschema.Draft7Validator(XR_SCHEMA).iter_errors(composite)
    ]
    return (
        problems + _cel_failures(XR_SCHEMA, composite) + _unique_list_map_keys(XR_SCHEMA, composite)
    )


EXAMPLE_SPECS = {
    path.parent.name: yaml.safe_load(path.read_text())["spec"]
    for path in sorted(EXAMPLES.glob("*/actor.yaml"))
}
SEED_SPECS = {
    "virtual-actors": seeds.load(seeds.VIRTUAL_ACTORS)["spec"],
    "state-proxy-page": seeds.load(seeds.STATE_PROXY_PAGE)["spec"],
    "connectors-page": seeds.load(seeds.CONNECTORS_PAGE)["spec"],
    "multiple-mounts": seeds.load(seeds.MULTIPLE_MOUNTS),
    "passthrough": seeds.load(seeds.PASSTHROUGH),
}


@pytest.mark.parametrize("name", list(EXAMPLE_SPECS))
def test_xrd_accepts_every_example(name: str) -> None:
    assert _xrd_rejects(EXAMPLE_SPECS[name]) == []


@pytest.mark.parametrize("name", list(SEED_SPECS))
def test_xrd_accepts_the_seeds_verbatim(name: str) -> None:
    assert _xrd_rejects(SEED_SPECS[name]) == []


def _entry(**fields: Any) -> dict[str, Any]:
    return actor({**mount("cache", "/state/cache"), **fields})["spec"]


def _connector(**fields: Any) -> dict[str, Any]:
    return _entry(connector={"type": "redis-buffered-cas", **fields})


def _env(*items: dict[str, Any]) -> dict[str, Any]:
    return _connector(env=list(items))


def _paths(*values: str) -> dict[str, Any]:
    return actor(*(mount(f"m{i}", value) for i, value in enumerate(values)))["spec"]


def _shorthand(**fields: Any) -> dict[str, Any]:
    return actor(stateProxy=fields)["spec"]


REFUSED_BY_BOTH = {
    "bad-name": actor(mount("Cache", "/state"))["spec"],
    "long-name": actor(mount("n" * 49, "/state"))["spec"],
    "relative-path": _paths("state"),
    "colon-path": _paths("/a:b"),
    "trailing-slash": _paths("/state/"),
    "dot-segment": _paths("/state/./x"),
    "dotdot-segment": _paths("/state/../x"),
    "write-mode": _entry(writeMode="stream"),
    "no-connector-source": _entry(connector={}),
    "two-connector-sources": _entry(connector={"type": "memory", "image": "x:1"}),
    "unknown-type": _entry(connector={"type": "s4"}),
    "image-with-space": _entry(connector={"image": "my image:1"}),
    "reserved-env": _env({"name": "CONNECTOR_SOCKET", "value": "x"}),
    "bad-env-name": _env({"name": "1X", "value": "x"}),
    "duplicate-env": _env({"name": "A", "value": "1"}, {"name": "A", "value": "2"}),
    "env-value-number": _env({"name": "A", "value": 1}),
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
    "secret-key-missing": _env({"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}),
    "env-from-both": _connector(
        envFrom=[{"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}]
    ),
    "env-from-prefix": _connector(envFrom=[{"prefix": "1X", "secretRef": {"name": "a"}}]),
    "quantity": _connector(resources={"limits": {"memory": "1GB"}}),
    "spill-size-limit": _connector(spillSizeLimit="1GB"),
    "metrics-port-privileged": _connector(metricsPort=80),
    "metrics-port-too-big": _connector(metricsPort=70000),
    "volume-over-tmp": _connector(volume={"claimName": "data", "mountPath": "/tmp"}),
    "volume-claim-name": _connector(volume={"claimName": "Data", "mountPath": "/data"}),
    "volume-path-dotdot": _connector(volume={"claimName": "data", "mountPath": "/data/.."}),
    "negative-replicas": actor(replicas=-1)["spec"],
    "bad-handler": actor(handler="agent")["spec"],
    "bad-actor": actor(actor="a/b")["spec"],
    "service-account-name": actor(serviceAccountName="Agent_S3")["spec"],
    "pull-secret-name": actor(imagePullSecrets=[{"name": "Bad Name"}])["spec"],
    "shorthand-backend": _shorthand(backend="dynamodb", bucket="b"),
    "shorthand-without-backend": _shorthand(bucket="b"),
    "shorthand-consistency": _shorthand(backend="s3", bucket="b", consistency="strong"),
    "shorthand-empty-bucket": _shorthand(backend="s3", bucket=""),
    "shorthand-write-mode": _shorthand(backend="s3", bucket="b", writeMode="stream"),
    "shorthand-reserved-env": _shorthand(
        backend="s3", bucket="b", env=[{"name": "CONNECTOR_SOCKET", "value": "x"}]
    ),
}


@pytest.mark.parametrize("name", list(REFUSED_BY_BOTH))
async def test_xrd_and_function_refuse_the_same_specs(name: str) -> None:
    spec = REFUSED_BY_BOTH[name]
    assert _xrd_rejects(spec), f"{name}: the API server would accept it"
    out = await run(request({"metadata": {"name": "a", "namespace": "n"}, "spec": spec}))
    assert out.fatal, f"{name}: the function would accept it"


# What only the function can refuse, and why the API server cannot.
ACROSS_ENTRIES = "spans entries of a field without a type, which CEL cannot see"
FUNCTION_ONLY = {
    "duplicate-name": (
        actor(mount("a", "/state/a"), mount("a", "/state/b"))["spec"],
        ACROSS_ENTRIES,
    ),
    "duplicate-path": (_paths("/state", "/state"), ACROSS_ENTRIES),
    "nested-path": (_paths("/state", "/state/cache"), ACROSS_ENTRIES),
    "metrics-port-twice": (
        actor(
            {**mount("a", "/state/a"), "connector": {"type": "memory", "metricsPort": 9100}},
            {**mount("b", "/state/b"), "connector": {"type": "memory", "metricsPort": 9100}},
        )["spec"],
        ACROSS_ENTRIES,
    ),
    "metrics-port-in-env": (
        _connector(metricsPort=9100, env=[{"name": "METRICS_PORT", "value": "1"}]),
        "relates two fields of an entry under a field without a type",
    ),
    "path-over-socket-dir": (
        _paths("/var/run/asya"),
        "the socket and library directories are the function input's, unknown to the XRD",
    ),
    "stateproxy-scalar": (
        actor(stateProxy="s3")["spec"],
        "a field without a type takes any value at the API server",
    ),
    "shorthand-unknown-field": (
        _shorthand(backend="s3", bucket="b", consistancy="lww"),
        "the shorthand keeps unknown fields (the field has no type), the function names them",
    ),
    "shorthand-needs-bucket": (
        _shorthand(backend="s3"),
        "which field a backend needs depends on the backend's value",
    ),
    "shorthand-redis-lww": (
        _shorthand(backend="redis", url="redis://r:6379", consistency="lww"),
        "which consistencies a backend offers depends on the backend's value",
    ),
}


@pytest.mark.parametrize("name", list(FUNCTION_ONLY))
async def test_rules_only_the_function_can_check(name: str) -> None:
    spec, why = FUNCTION_ONLY[name]
    assert _xrd_rejects(spec) == [], (
        f"{name}: the XRD refuses it after all; move it to REFUSED_BY_BOTH"
    )
    out = await run(request({"metadata": {"name": "a", "namespace": "n"}, "spec": spec}))
    assert out.fatal, f"{name}: nobody refuses it ({why})"
