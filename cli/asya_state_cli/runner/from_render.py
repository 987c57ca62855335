"""Turn a rendered actor Deployment into local mounts: what ``asya-state up`` runs.

Owns: reading the composed pod — the runtime container's
ASYA_STATE_PROXY_MOUNTS and each connector sidecar — and mapping it onto the
local runner: the connector chosen from the sidecar image name, its rendered
env with in-pod paths remapped to local directories, values the user
supplied for what only a cluster can resolve (``valueFrom``, ``envFrom``).
Every problem names the container and field it comes from.

Must not: start processes or run the function.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asya_state_function.catalog import connector_for_image

from .mounts import Mount


class UpError(ValueError):
    """The rendered pod cannot run locally; the message names the field."""


@dataclass(frozen=True)
class LocalPod:
    handler: str
    replicas: int
    mounts: list[Mount]


def local_pod(
    resources: list[dict[str, Any]],
    *,
    supplied_env: Mapping[str, str],
    state_dir: Path,
    skip_env_from: bool = False,
) -> LocalPod:
    deployments = [r for r in resources if r.get("kind") == "Deployment"]
    if len(deployments) != 1:
        raise UpError(f"expected one composed Deployment, found {len(deployments)}")
    pod = deployments[0]["spec"]["template"]["spec"]
    runtime = _runtime_container(pod)
    runtime_env = {e["name"]: e.get("value", "") for e in runtime.get("env", [])}
    handler = runtime_env.get("ASYA_HANDLER", "")
    if not handler:
        raise UpError(f"container {runtime['name']!r} has no ASYA_HANDLER env (spec.handler)")
    sidecars = {
        s["name"]: s for s in pod.get("initContainers", []) if s.get("restartPolicy") == "Always"
    }
    by_socket = {}
    for sidecar in sidecars.values():
        socket = next(
            (e.get("value", "") for e in sidecar.get("env", []) if e["name"] == "CONNECTOR_SOCKET"),
            "",
        )
        by_socket[posixpath.basename(socket).removesuffix(".sock")] = sidecar
    mounts: list[Mount] = []
    for entry in filter(None, runtime_env.get("ASYA_STATE_PROXY_MOUNTS", "").split(";")):
        name, path, *options = entry.split(":")
        write = "buffered"
        for option in ",".join(options).split(","):
            if option.startswith("write="):
                write = option.removeprefix("write=")
        sidecar = by_socket.get(name)
        if sidecar is None:
            raise UpError(
                f"mount {name!r} ({path}) has no connector sidecar with socket {name}.sock"
            )
        where = f"initContainers[{sidecar['name']}]"
        connector = connector_for_image(sidecar.get("image", ""))
        if connector is None:
            raise UpError(
                f"{where}.image {sidecar.get('image')!r}: cannot tell which connector it runs; "
                "local runs need an image named asya-state-proxy-<connector>"
            )
        env = _sidecar_env(
            sidecar, where, supplied_env, state_dir / name, skip_env_from=skip_env_from
        )
        mounts.append(Mount(name=name, path=path, connector=connector, write=write, env=env))
    if not mounts:
        raise UpError(
            f"container {runtime['name']!r} has no state mounts (ASYA_STATE_PROXY_MOUNTS)"
        )
    replicas = int(deployments[0]["spec"].get("replicas", 1) or 1)
    return LocalPod(handler=handler, replicas=replicas, mounts=mounts)


def _runtime_container(pod: dict[str, Any]) -> dict[str, Any]:
    for container in pod.get("containers", []):
        if any(e.get("name") == "ASYA_STATE_PROXY_MOUNTS" for e in container.get("env", [])):
            found: dict[str, Any] = container
            return found
    raise UpError("no container in the composed pod has ASYA_STATE_PROXY_MOUNTS")


def _sidecar_env(
    sidecar: dict[str, Any],
    where: str,
    supplied: Mapping[str, str],
    local_root: Path,
    *,
    skip_env_from: bool,
) -> dict[str, str]:
    if sidecar.get("envFrom") and not skip_env_from:
        sources = ", ".join(
            f"{kind}/{ref.get('name')}"
            for item in sidecar["envFrom"]
            for kind, ref in item.items()
            if isinstance(ref, dict)
        )
        raise UpError(
            f"{where}.envFrom ({sources}) only resolves in a cluster; pass the variables with --env NAME=VALUE "
            "and add --skip-env-from"
        )
    data_mounts = [
        m["mountPath"]
        for m in sidecar.get("volumeMounts", [])
        if m["mountPath"] not in ("/tmp",) and not m["name"].endswith("-sockets")
    ]
    env: dict[str, str] = {}
    for item in sidecar.get("env", []):
        name = item["name"]
        if name in ("CONNECTOR_SOCKET", "METRICS_PORT"):
            # The local pod puts the socket in its private directory, and opens
            # no TCP port: metrics stay reachable on the socket at /metrics.
            continue
        if name in supplied:
            env[name] = supplied[name]
        elif "value" in item:
            env[name] = _remap(item["value"], data_mounts, local_root)
        else:
            source = next(iter(item.get("valueFrom", {})), "valueFrom")
            raise UpError(
                f"{where}.env[{name}] comes from {source}, which only resolves in a cluster; "
                f"pass it with --env {name}=VALUE"
            )
    for name, value in supplied.items():
        env.setdefault(name, value)
    return env


def _remap(value: str, data_mounts: list[str], local_root: Path) -> str:
    """A path inside a volume the sidecar mounts becomes a path under the local state directory."""
    for mount_path in data_mounts:
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(local_root / value[len(mount_path) :].lstrip("/"))
    return value
