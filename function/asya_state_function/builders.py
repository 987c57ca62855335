"""Pure builders: the pod changes that give an actor its state mounts.

Owns: the runtime container's env and mounts (sockets, the hook library,
a read-only empty volume over every mount path), the pod's volumes, pull
secrets and service account, replacing connector containers an earlier
step added for the same mounts, the minimal Deployment composed when no
earlier step made one, and applying all of that to a Deployment
idempotently (by name, never twice).

Must not: validate (inputs arrive validated), read the request, or mutate
its arguments: every function returns new objects.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Iterable, Sequence
from typing import Any

from . import sidecars
from .identity import Identity
from .models import ActorSpec, FunctionInput, StateProxyEntry
from .sidecars import (
    LIBRARY_VOLUME,
    SOCKETS_VOLUME,
    data_volume,
    sidecar,
    spill_size_limit,
    tmp_volume,
    write_mode,
)
from .workload import Located

# One empty volume, mounted read-only at every state mount path of the runtime
# container: a handler that runs without the hooks (python -S, -I) fails with
# EROFS instead of writing its state to the container's disk.
GUARD_VOLUME = "asya-state-mounts"
ACTOR_LABEL = "asya.sh/actor"
NAME_LABEL = "app.kubernetes.io/name"

MOUNTS_ENV = "ASYA_STATE_PROXY_MOUNTS"
SOCKET_DIR_ENV = "ASYA_STATE_PROXY_SOCKET_DIR"
HANDLER_ENV = "ASYA_HANDLER"
LIBRARY_SIZE_LIMIT = "16Mi"

Obj = dict[str, Any]


class PatchError(ValueError):
    """The Deployment to patch lacks something the patch needs; the message says what."""


def mounts_env(entries: Sequence[StateProxyEntry], settings: FunctionInput) -> str:
    """``name:path:write=<mode>`` per entry, joined by ``;`` (the runtime's grammar)."""
    return ";".join(
        f"{entry.name}:{entry.mount.path}:write={write_mode(entry, settings)}" for entry in entries
    )


def pod_volumes(entries: Sequence[StateProxyEntry], settings: FunctionInput) -> list[Obj]:
    """The socket directory, the library, the mount-path guard and each sidecar's own volumes."""
    volumes: list[Obj] = [
        {"name": SOCKETS_VOLUME, "emptyDir": {}},
        {"name": LIBRARY_VOLUME, "emptyDir": {"sizeLimit": LIBRARY_SIZE_LIMIT}},
        # Nobody writes here: the runtime container mounts it read-only.
        {"name": GUARD_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}},
    ]
    for entry in entries:
        volumes.append(
            {
                "name": tmp_volume(entry),
                "emptyDir": {"sizeLimit": spill_size_limit(entry, settings)},
            }
        )
        volume = entry.connector.volume
        if volume is not None:
            claim: Obj = {"claimName": volume.claim_name}
            if volume.read_only:
                claim["readOnly"] = True
            volumes.append({"name": data_volume(entry), "persistentVolumeClaim": claim})
    return volumes


def runtime_container(
    container: Obj, entries: Sequence[StateProxyEntry], settings: FunctionInput, at: str
) -> Obj:
    """The runtime container with the mounts' env and volumes added; its own kept."""
    patched = copy.deepcopy(container)
    library = settings.runtime_library.mount_path
    env: list[Obj] = list(patched.get("env") or [])
    env = _upsert(env, {"name": MOUNTS_ENV, "value": mounts_env(entries, settings)}, "name")
    env = _upsert(env, {"name": SOCKET_DIR_ENV, "value": settings.socket_dir}, "name")
    env = _upsert(env, {"name": "PYTHONPATH", "value": _python_path(env, library, at)}, "name")
    patched["env"] = env
    ours = {SOCKETS_VOLUME, LIBRARY_VOLUME, GUARD_VOLUME}
    mounts: list[Obj] = list(patched.get("volumeMounts") or [])
    wanted: list[Obj] = [
        {"name": SOCKETS_VOLUME, "mountPath": settings.socket_dir},
        # sitecustomize.py in this directory, first on PYTHONPATH, activates the
        # hooks with no import in the handler.
        {"name": LIBRARY_VOLUME, "mountPath": library, "readOnly": True},
    ]
    for entry in entries:
        path = entry.mount.path
        for mount in mounts:
            if mount.get("mountPath") == path and mount.get("name") not in ours:
                raise PatchError(
                    f"{at}: the container already mounts volume {mount.get('name')!r} at {path}, "
                    f"the path of state mount {entry.name!r}; a state mount path must not be a volume"
                )
        wanted.append({"name": GUARD_VOLUME, "mountPath": path, "readOnly": True})
    for mount in wanted:
        mounts = _upsert(mounts, mount, "mountPath")
    patched["volumeMounts"] = mounts
    return patched


def _python_path(env: Sequence[Obj], library: str, at: str) -> str:
    current = next((var for var in env if var.get("name") == "PYTHONPATH"), None)
    if current is not None and "valueFrom" in current:
        raise PatchError(
            f"{at}.env[PYTHONPATH] comes from valueFrom; the function must prepend {library} to it, "
            "so set PYTHONPATH as a value"
        )
    existing = str(current.get("value", "")) if current else ""
    rest = [part for part in existing.split(":") if part and part != library]
    return ":".join([library, *rest])


def _connector_socket_name(container: Obj) -> str | None:
    for var in container.get("env") or []:
        if var.get("name") == sidecars.CONNECTOR_SOCKET_ENV and "value" in var:
            return posixpath.basename(str(var["value"])).removesuffix(".sock")
    return None


def _volume_names(containers: Iterable[Obj]) -> set[str]:
    return {str(m.get("name")) for c in containers for m in c.get("volumeMounts") or []}


def apply(located: Located, spec: ActorSpec, settings: FunctionInput, identity: Identity) -> Obj:
    """The Deployment with the state mounts of ``spec``; applying twice equals applying once."""
    patched = copy.deepcopy(located.deployment)
    entries = spec.state_proxy
    pod = patched.setdefault("spec", {}).setdefault("template", {}).setdefault("spec", {})
    if spec.service_account_name:
        pod["serviceAccountName"] = spec.service_account_name
    # The actor's own secrets always; the platform's (for connector and library
    # images) only when the pod runs any.
    pulls = [*spec.image_pull_secrets, *(settings.image_pull_secrets if entries else [])]
    secrets: list[Obj] = list(pod.get("imagePullSecrets") or [])
    for secret in pulls:
        secrets = _upsert(secrets, secret.wire(), "name")
    if secrets:
        pod["imagePullSecrets"] = secrets
    if not entries:
        return patched
    containers_at = located.path("spec.template.spec.containers")
    containers: list[Obj] = list(pod.get("containers") or [])
    wanted = settings.runtime_container_name
    index = next((i for i, c in enumerate(containers) if c.get("name") == wanted), None)
    if index is None:
        names = ", ".join(str(c.get("name")) for c in containers) or "none"
        raise PatchError(
            f"no container named {wanted!r} in {containers_at} (found: {names}); set "
            "input.runtimeContainerName to the container that runs the handler"
        )
    containers[index] = runtime_container(
        containers[index], entries, settings, f"{containers_at}[{wanted}]"
    )
    # A connector container an earlier step added for one of these mounts (upstream
    # Asya adds plain containers for them) would serve the same socket: replace it.
    mount_names = {entry.name for entry in entries}
    superseded = [
        c
        for i, c in enumerate(containers)
        if i != index and _connector_socket_name(c) in mount_names
    ]
    containers = [c for c in containers if c not in superseded]
    pod["containers"] = containers
    init: list[Obj] = list(pod.get("initContainers") or [])
    init = _upsert_first(init, sidecars.runtime_library_copier(settings), "name")
    for entry in entries:
        init = _upsert(init, sidecar(entry, settings, identity), "name")
    pod["initContainers"] = init
    volumes: list[Obj] = list(pod.get("volumes") or [])
    for volume in pod_volumes(entries, settings):
        volumes = _upsert(volumes, volume, "name")
    orphaned = _volume_names(superseded) - _volume_names([*containers, *init])
    pod["volumes"] = [v for v in volumes if v.get("name") not in orphaned]
    # Sockets are created mode 0660; a shared fsGroup lets the runtime connect
    # whatever user its image runs as.
    security = pod.setdefault("securityContext", {})
    security.setdefault("fsGroup", sidecars.SIDECAR_UID)
    return patched


def _upsert(items: list[Obj], item: Obj, key: str) -> list[Obj]:
    for index, existing in enumerate(items):
        if existing.get(key) == item[key]:
            return [*items[:index], item, *items[index + 1 :]]
    return [*items, item]


def _upsert_first(items: list[Obj], item: Obj, key: str) -> list[Obj]:
    """``item`` at the front (replacing an older copy), so it runs before the sidecars."""
    return [item, *(existing for existing in items if existing.get(key) != item[key])]


def minimal_deployment(
    xr: Obj, spec: ActorSpec, settings: FunctionInput, identity: Identity
) -> Obj:
    """The actor's Deployment from ``spec.image``, ``spec.handler`` and ``spec.replicas``."""
    metadata = xr.get("metadata") or {}
    labels = {NAME_LABEL: identity.actor, ACTOR_LABEL: identity.actor}
    deployment_metadata: Obj = {"name": identity.xr_name, "labels": dict(labels)}
    if metadata.get("namespace"):
        deployment_metadata["namespace"] = metadata["namespace"]
    deployment_spec: Obj = {}
    # Left unset without spec.replicas so that an autoscaler owns the count.
    if spec.replicas is not None:
        deployment_spec["replicas"] = spec.replicas
    deployment_spec |= {
        "selector": {"matchLabels": {ACTOR_LABEL: identity.actor}},
        "template": {
            "metadata": {"labels": dict(labels)},
            "spec": {
                "containers": [
                    {
                        "name": settings.runtime_container_name,
                        "image": spec.image,
                        "env": [{"name": HANDLER_ENV, "value": spec.handler}],
                    }
                ]
            },
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": deployment_metadata,
        "spec": deployment_spec,
    }
