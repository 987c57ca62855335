"""What the function tells users: the StateProxyReady condition and warnings.

Owns: the XR condition ``StateProxyReady`` (its status, reason and message
from the observed Deployment's rollout and sidecars), and the warnings
about risky but valid choices (last-writer-wins with several replicas,
passthrough into a compare-and-swap connector, the memory connector, a
connector image that is not from the catalog).

Must not: block composition: nothing here turns a valid spec into an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .catalog import CONNECTORS, IMAGE_PREFIX, Consistency, connector_for_image
from .models import ActorSpec, FunctionInput, StateProxyEntry
from .readiness import rollout
from .sidecars import from_catalog, sidecar_name, write_mode

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


def warnings(
    spec: ActorSpec, settings: FunctionInput, replicas: int, *, shorthand: bool = False
) -> list[str]:
    """Risky choices in ``spec``, each message starting with the field path the user wrote."""
    found: list[str] = []
    for index, entry in enumerate(spec.state_proxy):
        where = "spec.stateProxy" if shorthand else f"spec.stateProxy[{index}]"
        # The shorthand chooses its connector through consistency.
        chosen_by = f"{where}.consistency" if shorthand else f"{where}.connector"
        if not from_catalog(entry, settings):
            registry = settings.catalog.registry
            found.append(
                f"{where}.connector.image: {entry.connector.image} is not from the connector "
                f"catalog ({registry}/{IMAGE_PREFIX}<name> or input.catalog.images): the "
                "runtime speaks this project's protocol, which other connector images may not, "
                "and the sidecar gets no startup hook or probes; use connector.type, or add the "
                "image to input.catalog.images"
            )
        name = connector_name(entry)
        traits = CONNECTORS.get(name or "")
        if name is None or traits is None:
            continue
        if traits.ephemeral:
            found.append(
                f"{chosen_by}: {name} keeps state only while the sidecar runs; "
                "a restart or another pod starts empty"
            )
        elif traits.consistency is Consistency.LWW and replicas > 1:
            found.append(
                f"{chosen_by}: {name} is last-writer-wins and the actor runs {replicas} "
                "replicas; concurrent writes to one key silently overwrite each other "
                "(use a -cas connector when replicas share keys)"
            )
        if write_mode(entry, settings) == "passthrough" and traits.consistency is Consistency.CAS:
            found.append(
                f"{where}.writeMode: passthrough into {name}, a compare-and-swap connector: "
                "a conflict surfaces only when the file is closed, after the whole body was "
                "sent; prefer writeMode buffered for shared state"
            )
    return found


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
    state = rollout(observed)
    if not state.complete:
        reason = (
            "Unavailable"
            if state.reason in ("Unavailable", "ProgressDeadlineExceeded")
            else "RollingOut"
        )
        return Status("False", reason, f"Deployment {target!r}: {state.message}; mounts: {mounts}")
    return Status("True", "Available", f"state mounts ready: {mounts}")


def _describe(entries: Sequence[StateProxyEntry]) -> str:
    return ", ".join(f"{e.name} at {e.mount.path}" for e in entries)
