"""What the function tells users: the StateProxyReady condition and warnings.

Owns: the XR condition ``StateProxyReady`` (its status, reason and message
from the observed Deployment), whether the composed Deployment is ready,
and the warnings about risky but valid choices (last-writer-wins with
several replicas, passthrough into a compare-and-swap connector, the memory
connector).

Must not: block composition: nothing here turns a valid spec into an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .builders import sidecar_name, write_mode
from .catalog import CONNECTORS, Consistency, connector_for_image
from .models import ActorSpec, FunctionInput, StateProxyEntry

CONDITION_TYPE = "StateProxyReady"


@dataclass(frozen=True)
class Status:
    """One condition value: ``status`` is True, False or Unknown."""

    status: str
    reason: str
    message: str


def connector_name(entry: StateProxyEntry) -> str | None:
    """The catalog connector an entry runs, when the type or image says which."""
    if entry.connector.type is not None:
        return entry.connector.type
    return connector_for_image(entry.connector.image or "")


def warnings(spec: ActorSpec, settings: FunctionInput, replicas: int) -> list[str]:
    """Risky choices in ``spec``, each message starting with its field path."""
    found: list[str] = []
    for index, entry in enumerate(spec.state_proxy):
        at = f"spec.stateProxy[{index}]"
        name = connector_name(entry)
        traits = CONNECTORS.get(name or "")
        if name is None or traits is None:
            continue
        if traits.ephemeral:
            found.append(
                f"{at}.connector: {name} keeps state only while the sidecar runs; "
                "a restart or another pod starts empty"
            )
        elif traits.consistency is Consistency.LWW and replicas > 1:
            found.append(
                f"{at}.connector: {name} is last-writer-wins and the actor runs {replicas} "
                "replicas; concurrent writes to one key silently overwrite each other "
                "(use a -cas connector when replicas share keys)"
            )
        if write_mode(entry, settings) == "passthrough" and traits.consistency is Consistency.CAS:
            found.append(
                f"{at}.writeMode: passthrough into {name}, a compare-and-swap connector: "
                "a conflict surfaces only when the file is closed, after the whole body was "
                "sent; prefer writeMode buffered for shared state"
            )
    return found


def deployment_available(observed: dict[str, Any] | None) -> bool:
    return _condition(observed, "Available") == "True"


def state_proxy_status(
    spec: ActorSpec, observed: dict[str, Any] | None, settings: FunctionInput
) -> Status:
    """StateProxyReady from the observed Deployment: its sidecars rolled out and available."""
    entries = spec.state_proxy
    if not entries:
        return Status("True", "NoMounts", "spec.stateProxy lists no state mounts")
    mounts = _describe(entries)
    target = settings.deployment_resource_name
    if observed is None:
        return Status("False", "Creating", f"waiting for Deployment {target!r}; mounts: {mounts}")
    pod = (((observed.get("spec") or {}).get("template") or {}).get("spec")) or {}
    running = {c.get("name") for c in pod.get("initContainers") or []}
    missing = [sidecar_name(e) for e in entries if sidecar_name(e) not in running]
    if missing:
        return Status(
            "False", "RollingOut", f"Deployment {target!r} has no sidecar {', '.join(missing)} yet"
        )
    status = observed.get("status") or {}
    wanted = (observed.get("spec") or {}).get("replicas", 1)
    if status.get("updatedReplicas", 0) < wanted:
        return Status(
            "False",
            "RollingOut",
            f"Deployment {target!r} has {status.get('updatedReplicas', 0)} of {wanted} pods "
            "with the state sidecars",
        )
    if not deployment_available(observed):
        return Status(
            "False", "Unavailable", f"Deployment {target!r} is not available; mounts: {mounts}"
        )
    return Status("True", "Available", f"state mounts ready: {mounts}")


def _describe(entries: Sequence[StateProxyEntry]) -> str:
    return ", ".join(f"{e.name} at {e.mount.path}" for e in entries)


def _condition(resource: dict[str, Any] | None, kind: str) -> str | None:
    if not resource:
        return None
    for condition in (resource.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status"))
    return None
