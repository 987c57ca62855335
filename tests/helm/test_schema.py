"""values.schema.json: bad values are refused before anything renders, naming the key.

Each case is a mistake a platform engineer can make, why it must be refused,
and how the error message must name the key. Helm applies
the schema on install, upgrade, template and lint alike; ``render`` is the
same entry point ``helm template`` uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import helm_python as helm
import jsonschema
import pytest

from asya_state_connectors.registry import CONNECTORS

from .helpers import CHART_DIR


@dataclass(frozen=True)
class Bad:
    values: dict[str, Any]
    key: str  # how the message must name the key: its JSON pointer, or the unknown key
    reason: str


CASES = {
    "unknown top-level key": Bad(
        {"runtimeLibary": {"namespaces": ["x"]}},
        "additional properties 'runtimeLibary'",
        "a misspelt key would otherwise be ignored and the default used silently",
    ),
    "unknown connector in the catalog": Bad(
        {"connectors": {"images": {"s3-pasthrough": "mirror/s3:1"}}},
        "/connectors/images",
        "an override for a connector that does not exist never applies",
    ),
    "catalog image without tag or digest": Bad(
        {"connectors": {"images": {"s3-passthrough": "mirror/s3"}}},
        "/connectors/images/s3-passthrough",
        "an untagged image floats to whatever :latest is",
    ),
    "registry with a scheme": Bad(
        {"images": {"registry": "https://registry.example.com"}},
        "/images/registry",
        "image references carry no scheme; the kubelet would fail to pull",
    ),
    "registry with a trailing slash": Bad(
        {"connectors": {"registry": "registry.example.com/"}},
        "/connectors/registry",
        "it would produce 'registry//asya-state-proxy-...'",
    ),
    "tag with a colon": Bad(
        {"images": {"tag": "v1:2"}},
        "/images/tag",
        "not a valid image tag",
    ),
    "the old namespace list": Bad(
        {"runtimeLibrary": {"namespaces": ["agents"]}},
        "additional properties 'namespaces'",
        "the library travels in an image now; a stale values file is told, not ignored",
    ),
    "runtime library image without tag or digest": Bad(
        {"runtimeLibrary": {"image": "mirror/runtime"}},
        "/runtimeLibrary/image",
        "an untagged library image floats to whatever :latest is",
    ),
    "composite kind in lower case": Bad(
        {
            "composition": {
                "compositeTypeRef": {"apiVersion": "asya.sh/v1alpha1", "kind": "asyncactor"}
            }
        },
        "/composition/compositeTypeRef/kind",
        "a Kind is CamelCase; the Composition would never match an XR",
    ),
    "composite apiVersion without a version": Bad(
        {"composition": {"compositeTypeRef": {"apiVersion": "asya.sh", "kind": "AsyncActor"}}},
        "/composition/compositeTypeRef/apiVersion",
        "compositeTypeRef needs group/version",
    ),
    "readiness that is not offered": Bad(
        {"composition": {"probes": {"readiness": "socket"}}},
        "/composition/probes/readiness",
        "the function knows none and backend only",
    ),
    "startup hook that gives up at once": Bad(
        {"composition": {"probes": {"startupTimeoutSeconds": 0}}},
        "/composition/probes/startupTimeoutSeconds",
        "every sidecar would restart forever",
    ),
    "spill limit that is not a quantity": Bad(
        {"composition": {"defaults": {"spillSizeLimit": "1GB"}}},
        "/composition/defaults/spillSizeLimit",
        "the function refuses it on every actor",
    ),
    "connector pull secret as a bare string": Bad(
        {"connectors": {"imagePullSecrets": ["regcred"]}},
        "/connectors/imagePullSecrets/0",
        "a pod wants {name: ...} objects",
    ),
    "relative library mount path": Bad(
        {"runtimeLibrary": {"mountPath": "opt/asya"}},
        "/runtimeLibrary/mountPath",
        "a relative PYTHONPATH entry depends on the handler's working directory",
    ),
    "socket directory too long for a Unix socket path": Bad(
        {"composition": {"socketDir": "/var/run/" + "s" * 40}},
        "/composition/socketDir",
        "<socketDir>/<63-character mount name>.sock must fit in 107 bytes",
    ),
    "pipeline step without a function": Bad(
        {"composition": {"stepsBefore": [{"step": "compose"}]}},
        "/composition/stepsBefore/0",
        "Crossplane rejects a step with no functionRef",
    ),
    "pull secret as a bare string": Bad(
        {"function": {"packagePullSecrets": ["regcred"]}},
        "/function/packagePullSecrets/0",
        "the Function API wants {name: ...} objects",
    ),
    "unknown pull policy": Bad(
        {"function": {"packagePullPolicy": "Sometimes"}},
        "/function/packagePullPolicy",
        "Crossplane accepts only IfNotPresent, Always and Never",
    ),
    "zero function replicas": Bad(
        {"function": {"runtimeConfig": {"create": True, "replicas": 0}}},
        "/function/runtimeConfig/replicas",
        "no function pod means every AsyncActor stops reconciling",
    ),
    "rbac switch as a string": Bad(
        {"rbac": {"create": "false"}},
        "/rbac/create",
        "the string 'false' is truthy in templates and would create the role",
    ),
    "unknown key in the runtime config": Bad(
        {"function": {"runtimeConfig": {"resource": {}}}},
        "additional properties 'resource'",
        "a misspelt resources key would leave the function without limits",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_values_are_refused_naming_the_key(chart: helm.Chart, case: Bad) -> None:
    with pytest.raises(helm.HelmValuesError) as refused:
        chart.render(case.values, name="asp", namespace="crossplane-system")
    assert case.key in str(refused.value), (
        f"refusal ({case.reason}) does not name {case.key!r}: {refused.value}"
    )


def test_defaults_pass_the_schema(chart: helm.Chart) -> None:
    chart.validate_schema(chart.values)


SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())

# Objects whose keys are Kubernetes' own; kubernetes-validate checks them once
# rendered (tests/helm/test_manifests.py).
OPEN_OBJECTS = {"#/properties/function/properties/runtimeConfig/properties/env/items"}


def _objects_with_properties(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if "properties" in node:
            yield path, node
        for key, child in node.items():
            yield from _objects_with_properties(child, f"{path}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _objects_with_properties(child, f"{path}/{index}")


def test_schema_is_draft_07_and_closes_every_object_it_describes() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    open_objects = {
        path
        for path, node in _objects_with_properties(SCHEMA)
        if node.get("additionalProperties") is not False
    }
    assert open_objects == OPEN_OBJECTS


def test_catalog_keys_are_exactly_the_connector_images() -> None:
    """Every connector with an image can be overridden, and nothing else can."""
    catalog = SCHEMA["properties"]["connectors"]["properties"]["images"]["properties"]
    assert set(catalog) == set(CONNECTORS)
