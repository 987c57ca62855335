"""Shared pieces of the function tests: requests, responses as plain data, schema checks."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from asya_state_function.catalog import default_tag
from asya_state_function.fn import FunctionRunner
from asya_state_function.structs import to_dict

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PACKAGE = ROOT / "package"
TAG = default_tag()
# The oldest Kubernetes with native sidecars on by default, and the newest schema bundled.
K8S_VERSIONS = ("1.29", kubernetes_validate.latest_version())


def xr(spec: dict[str, Any], name: str = "actor", namespace: str = "agents") -> dict[str, Any]:
    return {
        "apiVersion": "asya.sh/v1alpha1",
        "kind": "AsyncActor",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def mount(name: str, path: str, **connector: Any) -> dict[str, Any]:
    """A stateProxy entry; ``connector`` defaults to ``type: redis-buffered-cas``."""
    return {
        "name": name,
        "mount": {"path": path},
        "connector": connector or {"type": "redis-buffered-cas"},
    }


def actor(*entries: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """An XR with image and handler set, and ``entries`` as its stateProxy."""
    base: dict[str, Any] = {"image": "registry.example.com/agents/a:1", "handler": "agent.process"}
    base.update(spec)
    if entries:
        base["stateProxy"] = list(entries)
    return xr(base)


def wrapped(manifest: dict[str, Any], **status: Any) -> dict[str, Any]:
    """A provider-kubernetes Object around ``manifest``; ``status`` as the provider reports it."""
    body: dict[str, Any] = {
        "apiVersion": "kubernetes.crossplane.io/v1alpha2",
        "kind": "Object",
        "spec": {
            "watch": True,
            "forProvider": {"manifest": manifest},
            "providerConfigRef": {"name": "kubernetes-provider"},
        },
    }
    if status:
        body["status"] = status
    return body


def deployment(*containers: dict[str, Any], **pod: Any) -> dict[str, Any]:
    """A Deployment as an earlier pipeline step would compose it."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "actor", "labels": {"team": "agents"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "actor"}},
            "template": {
                "metadata": {"labels": {"app": "actor"}},
                "spec": {"containers": list(containers), **pod},
            },
        },
    }


def request(
    composite: dict[str, Any],
    *,
    function_input: dict[str, Any] | None = None,
    desired: dict[str, dict[str, Any]] | None = None,
    observed: dict[str, dict[str, Any]] | None = None,
) -> fnv1.RunFunctionRequest:
    req = fnv1.RunFunctionRequest(
        meta=fnv1.RequestMeta(tag="test"),
        observed=fnv1.State(composite=fnv1.Resource(resource=resource.dict_to_struct(composite))),
    )
    if function_input is not None:
        req.input.CopyFrom(resource.dict_to_struct(function_input))
    for name, body in (desired or {}).items():
        req.desired.resources[name].resource.CopyFrom(resource.dict_to_struct(body))
    for name, body in (observed or {}).items():
        req.observed.resources[name].resource.CopyFrom(resource.dict_to_struct(body))
    return req


@dataclass
class Outcome:
    """A RunFunctionResponse as plain data."""

    response: fnv1.RunFunctionResponse
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    ready: dict[str, int] = field(default_factory=dict)
    fatal: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    condition: tuple[str, str, str] | None = None

    @property
    def deployment(self) -> dict[str, Any]:
        """The composed Deployment, unwrapped from a provider-kubernetes Object."""
        composed = self.resources["deployment"]
        if composed.get("kind") == "Object":
            manifest: dict[str, Any] = composed["spec"]["forProvider"]["manifest"]
            return manifest
        return composed

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.deployment["spec"]["template"]["spec"]
        return spec

    def container(self, name: str = "asya-runtime") -> dict[str, Any]:
        return next(c for c in self.pod["containers"] if c["name"] == name)

    def sidecar(self, name: str) -> dict[str, Any]:
        return next(c for c in self.pod["initContainers"] if c["name"] == f"asya-state-{name}")

    def volume(self, name: str) -> dict[str, Any]:
        return next(v for v in self.pod["volumes"] if v["name"] == name)

    def env(self, container: dict[str, Any]) -> dict[str, Any]:
        return {
            var["name"]: var.get("value", var.get("valueFrom")) for var in container.get("env", [])
        }


def outcome(rsp: fnv1.RunFunctionResponse) -> Outcome:
    result = Outcome(response=rsp)
    for name, composed in rsp.desired.resources.items():
        result.resources[name] = to_dict(composed.resource)
        result.ready[name] = composed.ready
    for item in rsp.results:
        if item.severity == fnv1.SEVERITY_FATAL:
            result.fatal.append(item.message)
        elif item.severity == fnv1.SEVERITY_WARNING:
            result.warnings.append(item.message)
    for condition in rsp.conditions:
        if condition.type == "StateProxyReady":
            status = fnv1.Status.Name(condition.status).removeprefix("STATUS_CONDITION_").title()
            result.condition = (status, condition.reason, condition.message)
    return result


async def run(req: fnv1.RunFunctionRequest) -> Outcome:
    return outcome(await FunctionRunner().RunFunction(copy.deepcopy(req)))


def assert_valid_kubernetes(manifest: dict[str, Any], reason: str = "") -> None:
    """Strict schema validation (unknown fields are errors) on the oldest and newest versions."""
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(part) for part in exc.path)
            raise AssertionError(
                f"{reason}: invalid for Kubernetes {version} at {where}: {exc.message}"
            ) from None
