"""The actor's Deployment inside a composed resource: composed as is, or wrapped in an Object.

Owns: telling a Deployment from a provider-kubernetes ``Object`` whose
``spec.forProvider.manifest`` is one (how upstream Asya's composition
composes actors), reading the desired Deployment out and putting a patched
one back, reading the observed Deployment (an Object reports it under
``status.atProvider.manifest``), and describing what a resource is when it
is neither.

Must not: change a Deployment's content.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

# provider-kubernetes: cluster-scoped Objects, and the namespaced ones of Crossplane v2.
OBJECT_GROUPS = ("kubernetes.crossplane.io", "kubernetes.m.crossplane.io")
MANIFEST_PATH = "spec.forProvider.manifest"
OBSERVED_MANIFEST_PATH = "status.atProvider.manifest"


class NotADeployment(ValueError):
    """The composed resource holds no Deployment; the message says what it holds."""


@dataclass(frozen=True)
class Located:
    """A Deployment and the field path it sits at in its composed resource ("" at the top)."""

    deployment: Obj
    at: str

    def path(self, field: str) -> str:
        return f"{self.at}.{field}" if self.at else field


def _group(resource: Obj) -> str:
    return str(resource.get("apiVersion", "")).split("/", 1)[0]


def is_object(resource: Obj) -> bool:
    return resource.get("kind") == "Object" and _group(resource) in OBJECT_GROUPS


def _is_deployment(resource: Any) -> bool:
    return (
        isinstance(resource, dict)
        and resource.get("kind") == "Deployment"
        and resource.get("apiVersion") == "apps/v1"
    )


def describe(resource: Obj) -> str:
    """What a composed resource is, for messages: ``Deployment 'a'``, ``Object 'o' wrapping ...``."""
    name = (resource.get("metadata") or {}).get("name")
    named = f" {name!r}" if name else ""
    if is_object(resource):
        manifest = ((resource.get("spec") or {}).get("forProvider") or {}).get("manifest")
        inner = describe(manifest) if isinstance(manifest, dict) else "nothing"
        return f"provider-kubernetes Object{named} wrapping {inner}"
    kind = resource.get("kind") or "resource without a kind"
    api = resource.get("apiVersion")
    return f"{kind}{named}" if _is_deployment(resource) or not api else f"{api} {kind}{named}"


def desired(resource: Obj) -> Located:
    """The Deployment to patch, or NotADeployment naming what the resource holds instead."""
    if _is_deployment(resource):
        return Located(resource, "")
    if is_object(resource):
        manifest = ((resource.get("spec") or {}).get("forProvider") or {}).get("manifest")
        if isinstance(manifest, dict) and _is_deployment(manifest):
            return Located(manifest, MANIFEST_PATH)
    raise NotADeployment(
        f"it is a {describe(resource)}; the function patches an apps/v1 Deployment, or a "
        f"provider-kubernetes Object whose {MANIFEST_PATH} is one"
    )


def put_back(resource: Obj, located: Located, deployment: Obj) -> Obj:
    """``resource`` with ``deployment`` where ``located`` found the original."""
    if not located.at:
        return deployment
    wrapped = copy.deepcopy(resource)
    wrapped["spec"]["forProvider"]["manifest"] = deployment
    return wrapped


def observed(resource: Obj | None) -> Obj | None:
    """The Deployment as the cluster reports it; None until it has been observed."""
    if resource is None:
        return None
    if is_object(resource):
        manifest = ((resource.get("status") or {}).get("atProvider") or {}).get("manifest")
        return manifest if _is_deployment(manifest) else None
    return resource if _is_deployment(resource) else None
