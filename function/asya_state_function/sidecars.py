"""Pure builders of the containers the function adds beside the handler.

Owns: the connector sidecar of one ``stateProxy[]`` entry (native sidecar,
socket and key-prefix env, the postStart hook that holds the handler until
the socket answers, cheap probes, hardened securityContext, a size-limited
writable /tmp) and the init container that copies the runtime hook library
from its image into the pod.

Must not: validate (inputs arrive validated), read the request, or mutate
its arguments.
"""

from __future__ import annotations

import posixpath
from typing import Any

from .catalog import RUNTIME_IMAGE, catalog_connector, image_for
from .identity import Identity
from .models import FunctionInput, StateProxyEntry

Obj = dict[str, Any]

SIDECAR_PREFIX = "asya-state-"
SOCKETS_VOLUME = "asya-state-sockets"
LIBRARY_VOLUME = "asya-state-runtime"
LIBRARY_CONTAINER = "asya-state-runtime-library"
# Where the runtime-library image keeps the library, and where its init container copies it.
LIBRARY_SOURCE = "/opt/asya-state-runtime"
LIBRARY_TARGET = "/mnt/asya-state-runtime"
SIDECAR_UID = 65532
CONNECTOR_SOCKET_ENV = "CONNECTOR_SOCKET"
PREFIX_ENV = "STATE_PREFIX"
HEALTH_ROUTE = "/v1/health"
READY_ROUTE = "/v1/ready"

# The sidecar's health check: standard library only, run as ``python3 -I -S -c``
# (no site, no environment), so it costs a bare interpreter start and needs
# nothing from the image but python3. argv: socket, seconds to keep trying, route.
HEALTH_CHECK = """\
import socket, sys, time
path, route = sys.argv[1], sys.argv[3]
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(3)
            s.connect(path)
            s.sendall(b"GET %s HTTP/1.1\\r\\nHost: c\\r\\nConnection: close\\r\\n\\r\\n" % route.encode())
            head = b""
            while len(head) < 12 and (part := s.recv(12 - len(head))):
                head += part
        if head == b"HTTP/1.1 200":
            sys.exit(0)
        problem = "answered %r" % head
    except OSError as exc:
        problem = str(exc)
    if time.monotonic() >= deadline:
        sys.exit("%s %s: %s" % (path, route, problem))
    time.sleep(0.05)
"""

HARDENED: Obj = {
    "runAsNonRoot": True,
    "runAsUser": SIDECAR_UID,
    "runAsGroup": SIDECAR_UID,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def sidecar_name(entry: StateProxyEntry) -> str:
    return f"{SIDECAR_PREFIX}{entry.name}"


def tmp_volume(entry: StateProxyEntry) -> str:
    return f"{SIDECAR_PREFIX}{entry.name}-tmp"


def data_volume(entry: StateProxyEntry) -> str:
    return f"{SIDECAR_PREFIX}{entry.name}-pvc"


def socket_path(settings: FunctionInput, entry: StateProxyEntry) -> str:
    return posixpath.join(settings.socket_dir, f"{entry.name}.sock")


def write_mode(entry: StateProxyEntry, settings: FunctionInput) -> str:
    return entry.write_mode or settings.defaults.write_mode


def spill_size_limit(entry: StateProxyEntry, settings: FunctionInput) -> int | str:
    return entry.connector.spill_size_limit or settings.defaults.spill_size_limit


def connector_image(entry: StateProxyEntry, settings: FunctionInput) -> str:
    """``connector.image`` as written, else the catalog image of ``connector.type``."""
    if entry.connector.image is not None:
        return entry.connector.image
    catalog = settings.catalog
    assert entry.connector.type is not None, "validation requires image or type"
    return image_for(entry.connector.type, catalog.registry, catalog.tag, catalog.images)


def from_catalog(entry: StateProxyEntry, settings: FunctionInput) -> bool:
    """Whether the entry runs one of this project's connector images (our protocol, python3)."""
    if entry.connector.type is not None:
        return True
    catalog = settings.catalog
    image = entry.connector.image or ""
    return catalog_connector(image, catalog.registry, catalog.images) is not None


def health_command(socket: str, *, wait: int, route: str = HEALTH_ROUTE) -> list[str]:
    return ["python3", "-I", "-S", "-c", HEALTH_CHECK, socket, str(wait), route]


def _probe(command: list[str], *, period: int) -> Obj:
    return {
        "exec": {"command": command},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


def sidecar(entry: StateProxyEntry, settings: FunctionInput, identity: Identity) -> Obj:
    """The connector of one entry as a native sidecar (an init container that keeps running)."""
    connector = entry.connector
    socket = socket_path(settings, entry)
    env: list[Obj] = [{"name": CONNECTOR_SOCKET_ENV, "value": socket}]
    env.extend(var.wire() for var in connector.env)
    if all(var.name != PREFIX_ENV for var in connector.env):
        # Actors sharing a bucket never see each other's keys unless they say so.
        env.append({"name": PREFIX_ENV, "value": identity.state_prefix})
    mounts: list[Obj] = [
        {"name": SOCKETS_VOLUME, "mountPath": settings.socket_dir},
        # The root filesystem is read-only; buffered writes spill here.
        {"name": tmp_volume(entry), "mountPath": "/tmp"},
    ]
    if connector.volume is not None:
        data: Obj = {"name": data_volume(entry), "mountPath": connector.volume.mount_path}
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
    }
    if from_catalog(entry, settings):
        container |= _checks(socket, settings)
    container |= {
        "securityContext": dict(HARDENED),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return container


def _checks(socket: str, settings: FunctionInput) -> Obj:
    """The hook that holds the next container until the socket answers, and the probes.

    The kubelet starts the next container of a pod only once a sidecar's
    postStart hook has returned, so the handler never runs before its
    sockets answer, with no probe period added to the pod's start.
    """
    probes = settings.probes
    checks: Obj = {
        "lifecycle": {
            "postStart": {
                "exec": {"command": health_command(socket, wait=probes.startup_timeout_seconds)}
            }
        }
    }
    if probes.liveness_period_seconds:
        checks["livenessProbe"] = _probe(
            health_command(socket, wait=0), period=probes.liveness_period_seconds
        )
    if probes.readiness == "backend":
        checks["readinessProbe"] = _probe(
            health_command(socket, wait=0, route=READY_ROUTE), period=10
        )
    return checks


def runtime_library_image(settings: FunctionInput) -> str:
    library, catalog = settings.runtime_library, settings.catalog
    if library.image is not None:
        return library.image
    return image_for(RUNTIME_IMAGE, catalog.registry, catalog.tag, {})


def runtime_library_copier(settings: FunctionInput) -> Obj:
    """The init container that copies the hook library into the pod's library volume.

    The library travels in an image, so every new pod gets the release the
    function belongs to, in every namespace, with nothing installed per
    namespace.
    """
    return {
        "name": LIBRARY_CONTAINER,
        "image": runtime_library_image(settings),
        "command": ["cp", "-R", f"{LIBRARY_SOURCE}/.", f"{LIBRARY_TARGET}/"],
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"memory": "64Mi"},
        },
        "volumeMounts": [{"name": LIBRARY_VOLUME, "mountPath": LIBRARY_TARGET}],
        "securityContext": dict(HARDENED),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
