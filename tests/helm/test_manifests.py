"""What the chart renders, for the defaults and every helm/ci scenario.

Kubernetes-native objects are checked against the Kubernetes schemas in
strict mode; Crossplane objects (whose schemas live in Crossplane's CRDs,
not in kubernetes-validate) are checked for what the chart promises: the
package it names, the references between them, and the embedded
Deployment template, which is checked as a real Deployment.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes_validate import utils as kube_validate

from .conftest import Scenario
from .helpers import APP_VERSION, KUBE_VERSIONS, NAMESPACE, RELEASE, Manifest, of_kind, only

CROSSPLANE_KINDS = {
    "Function",
    "DeploymentRuntimeConfig",
    "CompositeResourceDefinition",
    "Composition",
}


def _validate(body: dict[str, Any], version: str, where: str) -> None:
    try:
        kube_validate.validate(body, version, strict=True)
    except kube_validate.ValidationError as exc:
        path = "/".join(str(part) for part in exc.absolute_path)
        pytest.fail(f"{where}: invalid for Kubernetes {version} at {path}: {exc.message}")
    except kube_validate.SchemaNotFoundError as exc:
        pytest.fail(f"{where}: {exc.message}; a kind the tests do not know how to check")


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_kubernetes_objects_pass_strict_schema_validation(scenario: Scenario, version: str) -> None:
    for manifest in scenario.manifests:
        if manifest.kind not in CROSSPLANE_KINDS:
            _validate(
                manifest.body, version, f"{manifest.template} ({manifest.kind} {manifest.name})"
            )


def test_every_object_carries_the_chart_labels(scenario: Scenario) -> None:
    expected = {
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/part-of": "asya-state-proxy",
        **scenario.merged["commonLabels"],
    }
    for manifest in scenario.manifests:
        labels = manifest.body["metadata"].get("labels", {})
        missing = {k: v for k, v in expected.items() if labels.get(k) != v}
        assert not missing, f"{manifest.template} ({manifest.kind}) lacks labels {missing}"


def _expected_package(values: dict[str, Any]) -> str:
    function = values["function"]
    if function["package"]:
        return str(function["package"])
    tag = values["images"]["tag"] or APP_VERSION
    return f"{values['images']['registry']}/asya-state-proxy-function:{tag}"


def test_function_names_the_package_and_its_runtime_config(scenario: Scenario) -> None:
    values = scenario.merged
    function = only(scenario.manifests, "Function")
    spec = function.body["spec"]
    assert function.body["apiVersion"] == "pkg.crossplane.io/v1"
    assert spec["package"] == _expected_package(values)
    assert spec["packagePullPolicy"] == values["function"]["packagePullPolicy"]
    assert spec.get("packagePullSecrets", []) == values["function"]["packagePullSecrets"]
    assert spec["revisionActivationPolicy"] == values["function"]["revisionActivationPolicy"]

    runtime_configs = of_kind(scenario.manifests, "DeploymentRuntimeConfig")
    wanted = values["function"]["runtimeConfig"]
    if wanted["create"]:
        assert len(runtime_configs) == 1
        assert spec["runtimeConfigRef"] == {
            "apiVersion": "pkg.crossplane.io/v1beta1",
            "kind": "DeploymentRuntimeConfig",
            "name": runtime_configs[0].name,
        }
    else:
        assert not runtime_configs
        assert spec.get("runtimeConfigRef", {}).get("name", "") == wanted["name"]


def _as_deployment(runtime_config: Manifest) -> dict[str, Any]:
    """The DeploymentRuntimeConfig's template as the Deployment Crossplane merges it into."""
    spec = copy.deepcopy(runtime_config.body["spec"]["deploymentTemplate"]["spec"])
    spec["selector"] = {"matchLabels": {"pkg.crossplane.io/function": "f"}}
    spec["template"].setdefault("metadata", {})["labels"] = {"pkg.crossplane.io/function": "f"}
    for container in spec["template"]["spec"]["containers"]:
        container.setdefault("image", "function")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": runtime_config.name, "namespace": NAMESPACE},
        "spec": spec,
    }


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_runtime_config_template_is_a_valid_deployment(scenario: Scenario, version: str) -> None:
    for runtime_config in of_kind(scenario.manifests, "DeploymentRuntimeConfig"):
        assert runtime_config.body["apiVersion"] == "pkg.crossplane.io/v1beta1"
        template = runtime_config.body["spec"]["deploymentTemplate"]["spec"]["template"]["spec"]
        # Crossplane merges by container name; any other name adds a container.
        assert [c["name"] for c in template["containers"]] == ["package-runtime"]
        _validate(_as_deployment(runtime_config), version, runtime_config.template)


def test_runtime_config_carries_every_value(rendered: dict[str, Scenario]) -> None:
    scenario = rendered["runtime-config-values.yaml"]
    wanted = scenario.merged["function"]["runtimeConfig"]
    body = only(scenario.manifests, "DeploymentRuntimeConfig").body["spec"]
    deployment = body["deploymentTemplate"]["spec"]
    pod = deployment["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["replicas"] == wanted["replicas"]
    assert container["args"] == wanted["args"]
    assert container["env"] == wanted["env"]
    assert container["resources"] == wanted["resources"]
    assert container["securityContext"] == wanted["securityContext"]
    assert pod["securityContext"] == wanted["podSecurityContext"]
    assert pod["nodeSelector"] == wanted["nodeSelector"]
    assert pod["tolerations"] == wanted["tolerations"]
    assert pod["affinity"] == wanted["affinity"]
    assert pod["priorityClassName"] == wanted["priorityClassName"]
    assert (
        body["serviceAccountTemplate"]["metadata"]["annotations"]
        == (wanted["serviceAccountAnnotations"])
    )


def test_crossplane_may_manage_composed_deployments_only(scenario: Scenario) -> None:
    roles = of_kind(scenario.manifests, "ClusterRole")
    if not scenario.merged["rbac"]["create"]:
        assert not roles
        return
    (role,) = roles
    assert role.body["metadata"]["labels"]["rbac.crossplane.io/aggregate-to-crossplane"] == "true"
    assert role.body["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        }
    ]
    # The function itself is granted nothing: no ServiceAccount, Role or binding.
    kinds = {m.kind for m in scenario.manifests}
    assert not kinds & {"ServiceAccount", "Role", "RoleBinding", "ClusterRoleBinding"}
