"""Pure builders: the Kubernetes objects and patches that give an actor its state mounts.

Owns: the connector sidecar of a ``stateProxy[]`` entry (native sidecar,
socket env, probes, hardened securityContext, writable /tmp), the shared
socket and runtime-library volumes, the runtime container's env and mounts,
the minimal Deployment composed when no earlier step made one, and
applying all of that to a Deployment idempotently (by name, never twice).

Must not: validate (inputs arrive validated), read the request, or mutate
its arguments: every function returns new objects.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Sequence
from typing import Any

from .catalog import image_for
from .models import ActorSpec, FunctionInput, StateProxyEntry

SOCKETS_VOLUME = "asya-state-sockets"
LIBRARY_VOLUME = "asya-state-runtime"
LIBRARY_PACKAGE = "asya_state_runtime"
LIBRARY_HOOK = "sitecustomize.py"
SIDECAR_PREFIX = "asya-state-"
SIDECAR_UID = 65532
ACTOR_LABEL = "asya.sh/actor"
NAME_LABEL = "app.kubernetes.io/name"

MOUNTS_ENV = "ASYA_STATE_PROXY_MOUNTS"
SOCKET_DIR_ENV = "ASYA_STATE_PROXY_SOCKET_DIR"
HANDLER_ENV = "ASYA_HANDLER"
CONNECTOR_SOCKET_ENV = "CONNECTOR_SOCKET"

Obj = dict[str, Any]


class PatchError(ValueError):
    """The Deployment to patch lacks something the patch needs; the message says what."""


def sidecar_name(entry: StateProxyEntry) -> str:
    return f"{SIDECAR_PREFIX}{entry.name}"


def socket_path(settings: FunctionInput, entry: StateProxyEntry) -> str:
    return posixpath.join(settings.socket_dir, f"{entry.name}.sock")


def connector_image(entry: StateProxyEntry, settings: FunctionInput) -> str:
    """``connector.image`` as written, else the catalog image of ``connector.type``."""
    if entry.connector.image is not None:
        return entry.connector.image
    catalog = settings.catalog
    assert entry.connector.type is not None, "validation requires image or type"
    return image_for(entry.connector.type, catalog.registry, catalog.tag, catalog.images)


def write_mode(entry: StateProxyEntry, settings: FunctionInput) -> str:
    return entry.write_mode or settings.defaults.write_mode


def mounts_env(entries: Sequence[StateProxyEntry], settings: FunctionInput) -> str:
    """``name:path:write=<mode>`` per entry, joined by ``;`` (the runtime's grammar)."""
    return ";".join(
        f"{entry.name}:{entry.mount.path}:write={write_mode(entry, settings)}" for entry in entries
    )


def _tmp_volume(entry: StateProxyEntry) -> str:
    return f"{SIDECAR_PREFIX}{entry.name}-tmp"


def _data_volume(entry: StateProxyEntry) -> str:
    return f"{SIDECAR_PREFIX}{entry.name}-pvc"


def _probe(command: list[str], *, period: int, failures: int) -> Obj:
    return {
        "exec": {"command": command},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def sidecar(entry: StateProxyEntry, settings: FunctionInput) -> Obj:
    """The connector of one entry as a native sidecar (an init container that keeps running)."""
    connector = entry.connector
    socket = socket_path(settings, entry)
    health = ["asya-state", "probe", "--socket", socket]
    env: list[Obj] = [{"name": CONNECTOR_SOCKET_ENV, "value": socket}]
    env.extend(var.wire() for var in connector.env)
    mounts: list[Obj] = [
        {"name": SOCKETS_VOLUME, "mountPath": settings.socket_dir},
        # The root filesystem is read-only; buffered writes spill here.
        {"name": _tmp_volume(entry), "mountPath": "/tmp"},
    ]
    if connector.volume is not None:
        data: Obj = {"name": _data_volume(entry), "mountPath": connector.volume.mount_path}
        if connector.volume.sub_path:
            data["subPath"] = connector.volume.sub_path
        if connector.volume.read_only:
            data["readOnly"] = True
        mounts.append(data)
    container: Obj = {
        "name": sidecar_name(entry),
        "image": connector_image(entry, settings),
        "restartPolicy": "Always",
        "env": env,
    }
    if connector.metrics_port is not None:
        # The connector's only TCP listener, opened because the spec asks for it.
        env.append({"name": "METRICS_PORT", "value": str(connector.metrics_port)})
        # Port names are unique in a pod and ports are too (validation), so name it by number.
        container["ports"] = [
            {
                "name": f"m-{connector.metrics_port}",
                "containerPort": connector.metrics_port,
                "protocol": "TCP",
            }
        ]
    if connector.env_from:
        container["envFrom"] = [source.wire() for source in connector.env_from]
    container |= {
        "resources": (connector.resources or settings.defaults.connector_resources).wire(),
        "volumeMounts": mounts,
        # Sidecars start in order and the runtime starts last: it never sees a
        # missing socket while the pod starts.
        "startupProbe": _probe(health, period=1, failures=120),
        "readinessProbe": _probe([*health, "--ready"], period=10, failures=3),
        "livenessProbe": _probe(health, period=10, failures=3),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": SIDECAR_UID,
            "runAsGroup": SIDECAR_UID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return container


def pod_volumes(entries: Sequence[StateProxyEntry], settings: FunctionInput) -> list[Obj]:
    """The shared socket directory, the runtime library and each sidecar's own volumes."""
    volumes: list[Obj] = [
        {"name": SOCKETS_VOLUME, "emptyDir": {}},
        {
            "name": LIBRARY_VOLUME,
            "configMap": {"name": settings.runtime_library.config_map_name, "defaultMode": 0o444},
        },
    ]
    for entry in entries:
        volumes.append({"name": _tmp_volume(entry), "emptyDir": {}})
        volume = entry.connector.volume
        if volume is not None:
            claim: Obj = {"claimName": volume.claim_name}
            if volume.read_only:
                claim["readOnly"] = True
            volumes.append({"name": _data_volume(entry), "persistentVolumeClaim": claim})
    return volumes


def runtime_container(
    container: Obj, entries: Sequence[StateProxyEntry], settings: FunctionInput
) -> Obj:
    """The runtime container with the mounts' env and volumes added; its own kept."""
    patched = copy.deepcopy(container)
    library = settings.runtime_library.mount_path
    env: list[Obj] = list(patched.get("env") or [])
    env = _upsert(env, {"name": MOUNTS_ENV, "value": mounts_env(entries, settings)}, "name")
    env = _upsert(env, {"name": SOCKET_DIR_ENV, "value": settings.socket_dir}, "name")
    env = _upsert(env, {"name": "PYTHONPATH", "value": _python_path(env, library)}, "name")
    patched["env"] = env
    mounts: list[Obj] = list(patched.get("volumeMounts") or [])
    for mount in (
        {"name": SOCKETS_VOLUME, "mountPath": settings.socket_dir},
        {
            "name": LIBRARY_VOLUME,
            "mountPath": posixpath.join(library, LIBRARY_PACKAGE),
            "readOnly": True,
        },
        # sitecustomize on PYTHONPATH activates the hooks with no import in the handler.
        {
            "name": LIBRARY_VOLUME,
            "mountPath": posixpath.join(library, LIBRARY_HOOK),
            "subPath": LIBRARY_HOOK,
            "readOnly": True,
        },
    ):
        mounts = _upsert(mounts, mount, "mountPath")
    patched["volumeMounts"] = mounts
    return patched


def _python_path(env: Sequence[Obj], library: str) -> str:
    current = next((var for var in env if var.get("name") == "PYTHONPATH"), None)
    if current is not None and "valueFrom" in current:
        raise PatchError(
            "the runtime container sets PYTHONPATH with valueFrom; the function must prepend "
            f"{library} to it, so set PYTHONPATH as a value"
        )
    existing = str(current.get("value", "")) if current else ""
    rest = [part for part in existing.split(":") if part and part != library]
    return ":".join([library, *rest])


def apply(deployment: Obj, spec: ActorSpec, settings: FunctionInput) -> Obj:
    """The Deployment with the state mounts of ``spec``; applying twice equals applying once."""
    patched = copy.deepcopy(deployment)
    entries = spec.state_proxy
    if not entries:
        return patched
    pod = patched.setdefault("spec", {}).setdefault("template", {}).setdefault("spec", {})
    containers: list[Obj] = list(pod.get("containers") or [])
    wanted = settings.runtime_container_name
    index = next((i for i, c in enumerate(containers) if c.get("name") == wanted), None)
    if index is None:
        names = ", ".join(str(c.get("name")) for c in containers) or "none"
        raise PatchError(
            f"the Deployment {settings.deployment_resource_name!r} has no container named "
            f"{wanted!r} (containers: {names}); set input.runtimeContainerName"
        )
    containers[index] = runtime_container(containers[index], entries, settings)
    pod["containers"] = containers
    init: list[Obj] = list(pod.get("initContainers") or [])
    for entry in entries:
        init = _upsert(init, sidecar(entry, settings), "name")
    pod["initContainers"] = init
    volumes: list[Obj] = list(pod.get("volumes") or [])
    for volume in pod_volumes(entries, settings):
        volumes = _upsert(volumes, volume, "name")
    pod["volumes"] = volumes
    # Sockets are created mode 0660; a shared fsGroup lets the runtime connect
    # whatever user its image runs as.
    security = pod.setdefault("securityContext", {})
    security.setdefault("fsGroup", SIDECAR_UID)
    return patched


def _upsert(items: list[Obj], item: Obj, key: str) -> list[Obj]:
    for index, existing in enumerate(items):
        if existing.get(key) == item[key]:
            return [*items[:index], item, *items[index + 1 :]]
    return [*items, item]


def actor_name(xr_name: str, spec: ActorSpec) -> str:
    return spec.actor or xr_name


def minimal_deployment(xr: Obj, spec: ActorSpec, settings: FunctionInput) -> Obj:
    """The actor's Deployment from ``spec.image``, ``spec.handler`` and ``spec.replicas``."""
    metadata = xr.get("metadata") or {}
    name = str(metadata.get("name", ""))
    actor = actor_name(name, spec)
    labels = {NAME_LABEL: actor, ACTOR_LABEL: actor}
    deployment_metadata: Obj = {"name": name, "labels": dict(labels)}
    if metadata.get("namespace"):
        deployment_metadata["namespace"] = metadata["namespace"]
    deployment_spec: Obj = {}
    # Left unset without spec.replicas so that an autoscaler owns the count.
    if spec.replicas is not None:
        deployment_spec["replicas"] = spec.replicas
    deployment_spec |= {
        "selector": {"matchLabels": {ACTOR_LABEL: actor}},
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
