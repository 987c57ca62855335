"""Whether a Deployment has finished rolling out, decided the way ``kubectl rollout status``
and function-auto-ready decide it.

Owns: one verdict from an observed Deployment's generation, replica counts
and conditions: complete, or what the rollout still waits for. Complete
means the controller has seen the latest spec (observedGeneration), every
wanted pod runs the new template (updatedReplicas), no pod of an old
template is left (replicas), every wanted pod is available
(availableReplicas) and the Available condition is True.

Must not: know about state mounts or composed resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rollout:
    complete: bool
    reason: str
    message: str


def _count(status: dict[str, Any], field: str) -> int:
    value = status.get(field, 0)
    return value if isinstance(value, int) else 0


def condition(resource: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for item in (resource.get("status") or {}).get("conditions") or []:
        if isinstance(item, dict) and item.get("type") == kind:
            return item
    return None


def rollout(deployment: dict[str, Any] | None) -> Rollout:
    """The rollout state of an observed Deployment; None is one not observed yet."""
    if deployment is None:
        return Rollout(False, "NotObserved", "not observed in the cluster yet")
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation")
    seen = status.get("observedGeneration")
    if isinstance(generation, int) and (not isinstance(seen, int) or seen < generation):
        return Rollout(
            False,
            "Stale",
            f"the controller has not acted on generation {generation} yet "
            f"(status is of generation {seen if isinstance(seen, int) else 'none'})",
        )
    progressing = condition(deployment, "Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Rollout(
            False,
            "ProgressDeadlineExceeded",
            f"exceeded its progress deadline: {progressing.get('message', '')}".rstrip(": "),
        )
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    wanted = wanted if isinstance(wanted, int) else 1
    updated, total = _count(status, "updatedReplicas"), _count(status, "replicas")
    available = _count(status, "availableReplicas")
    if updated < wanted:
        return Rollout(False, "Updating", f"{updated} of {wanted} pods run the new template")
    if total > updated:
        return Rollout(
            False, "OldReplicas", f"{total - updated} pods of an old template are still running"
        )
    if available < wanted:
        return Rollout(False, "Unavailable", f"{available} of {wanted} pods are available")
    if (condition(deployment, "Available") or {}).get("status") != "True":
        return Rollout(False, "Unavailable", "its Available condition is not True")
    return Rollout(True, "Available", f"{wanted} of {wanted} pods updated and available")
