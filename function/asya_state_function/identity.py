"""Who an actor is: its name and namespace, read from the composite resource.

Owns: the actor name (``spec.actor``, else the claim's name, else the XR's
name), the namespace (the namespaced XR's, else the claim's), and the key
prefix both stateProxy forms default to, ``<namespace>/<actor>/``.

Must not: validate or build Kubernetes objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import ActorSpec

# Labels Crossplane puts on a cluster-scoped XR that a namespaced claim created
# (upstream Asya's XAsyncActor is claimed as AsyncActor this way).
CLAIM_NAME_LABEL = "crossplane.io/claim-name"
CLAIM_NAMESPACE_LABEL = "crossplane.io/claim-namespace"


@dataclass(frozen=True)
class Identity:
    xr_name: str
    actor: str
    namespace: str | None

    @property
    def state_prefix(self) -> str:
        """``<namespace>/<actor>/``, or ``<actor>/`` for a cluster-scoped XR without a claim."""
        parts = [part for part in (self.namespace, self.actor) if part]
        return "".join(f"{part}/" for part in parts)


def identify(xr: dict[str, Any], spec: ActorSpec) -> Identity:
    metadata = xr.get("metadata") or {}
    labels = metadata.get("labels") or {}
    xr_name = str(metadata.get("name") or "")
    actor = spec.actor or str(labels.get(CLAIM_NAME_LABEL) or "") or xr_name
    namespace = metadata.get("namespace") or labels.get(CLAIM_NAMESPACE_LABEL)
    return Identity(xr_name=xr_name, actor=actor, namespace=str(namespace) if namespace else None)
