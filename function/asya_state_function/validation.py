"""Validation of the actor spec and the function input, every error with its field path.

Owns: reading ``spec.stateProxy`` as a list or as the shorthand, turning
model parse errors into ``spec.stateProxy[1].mount.path: ...`` messages,
and the rules a type cannot express: unique DNS-label names, normalized
absolute mount paths that neither repeat nor nest nor cover the function's
own directories, one connector source per entry, well-formed env, what each
shorthand backend needs.

Must not: raise for bad input (errors are returned, the caller reports
them) or build Kubernetes objects.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from . import shorthand as short
from .catalog import CONNECTORS
from .identity import Identity
from .models import (
    ActorSpec,
    EnvFromSource,
    EnvVar,
    FunctionInput,
    LocalObjectReference,
    StateProxyEntry,
    StateProxyShorthand,
)

INPUT_API_VERSION = "stateproxy.fn.asya.sh/v1beta1"
INPUT_KIND = "Input"

# A mount name becomes part of a container name (asya-state-<name>) and of
# volume names (asya-state-<name>-tmp), which are DNS-1123 labels of <= 63.
MAX_NAME = 48
# Connectors run as a non-root user: no privileged ports.
MIN_METRICS_PORT = 1024
METRICS_PORT_ENV = "METRICS_PORT"
# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
RESERVED_ENV = "CONNECTOR_SOCKET"
PREFIX_ENV = "STATE_PREFIX"
MAX_PROBE_SECONDS = 3600

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_HANDLER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_IMAGE = re.compile(r"^[^\s]+$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

_TYPE_MESSAGES = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
}

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class FieldError:
    """One problem, located by its field path in the XR or the input."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def field_path(prefix: str, loc: Sequence[int | str]) -> str:
    """``("stateProxy", 1, "mount", "path")`` under ``spec`` -> ``spec.stateProxy[1].mount.path``."""
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def parse(model: type[M], data: Any, prefix: str) -> tuple[M | None, list[FieldError]]:
    """Parse ``data`` into ``model``; on failure, every problem with its path."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        errors = [
            FieldError(field_path(prefix, err["loc"]), _message(err))
            for err in exc.errors(include_url=False)
        ]
        return None, errors


def parse_spec(
    raw: Any,
) -> tuple[ActorSpec | None, StateProxyShorthand | None, list[FieldError]]:
    """``spec`` with ``stateProxy`` as a list of mounts, or as the one-mount shorthand."""
    if not isinstance(raw, dict):
        invalid, problems = parse(ActorSpec, raw, "spec")
        return invalid, None, problems
    state_proxy = raw.get("stateProxy")
    found: StateProxyShorthand | None = None
    errors: list[FieldError] = []
    if isinstance(state_proxy, dict):
        found, errors = parse(StateProxyShorthand, state_proxy, "spec.stateProxy")
        raw = {key: value for key, value in raw.items() if key != "stateProxy"}
    elif state_proxy is not None and not isinstance(state_proxy, list):
        errors.append(
            FieldError(
                "spec.stateProxy",
                "must be a list of mounts or the shorthand {backend, bucket, consistency}, "
                f"got {state_proxy!r}",
            )
        )
        raw = {key: value for key, value in raw.items() if key != "stateProxy"}
    spec, spec_errors = parse(ActorSpec, raw, "spec")
    errors.extend(spec_errors)
    if errors:
        return None, None, errors
    return spec, found, []


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "literal_error":
        return f"must be {err['ctx']['expected']}, got {err['input']!r}"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind in _TYPE_MESSAGES:
        return f"{_TYPE_MESSAGES[kind]}, got {err['input']!r}"
    return str(err["msg"])


def validate_input(settings: FunctionInput) -> list[FieldError]:
    """Rules of the function input beyond its types."""
    errors: list[FieldError] = []
    if settings.api_version is not None and settings.api_version != INPUT_API_VERSION:
        errors.append(
            FieldError(
                "input.apiVersion", f"must be {INPUT_API_VERSION}, got {settings.api_version!r}"
            )
        )
    if settings.kind is not None and settings.kind != INPUT_KIND:
        errors.append(FieldError("input.kind", f"must be {INPUT_KIND}, got {settings.kind!r}"))
    if not settings.deployment_resource_name:
        errors.append(FieldError("input.deploymentResourceName", "must not be empty"))
    if not _DNS_LABEL.match(settings.runtime_container_name):
        errors.append(
            FieldError("input.runtimeContainerName", _not_label(settings.runtime_container_name))
        )
    for path, value in (
        ("input.socketDir", settings.socket_dir),
        ("input.runtimeLibrary.mountPath", settings.runtime_library.mount_path),
    ):
        problem = _path_problem(value)
        if problem:
            errors.append(FieldError(path, problem))
    image = settings.runtime_library.image
    if image is not None and not _IMAGE.match(image):
        errors.append(
            FieldError("input.runtimeLibrary.image", f"must be an image reference, got {image!r}")
        )
    errors.extend(_pull_secret_errors("input.imagePullSecrets", settings.image_pull_secrets))
    probes = settings.probes
    if not 1 <= probes.startup_timeout_seconds <= MAX_PROBE_SECONDS:
        errors.append(
            FieldError(
                "input.probes.startupTimeoutSeconds",
                f"must be from 1 to {MAX_PROBE_SECONDS}, got {probes.startup_timeout_seconds}",
            )
        )
    if not 0 <= probes.liveness_period_seconds <= MAX_PROBE_SECONDS:
        errors.append(
            FieldError(
                "input.probes.livenessPeriodSeconds",
                f"must be from 0 (no liveness probe) to {MAX_PROBE_SECONDS}, "
                f"got {probes.liveness_period_seconds}",
            )
        )
    catalog = settings.catalog
    if not catalog.registry.strip("/") or not _IMAGE.match(catalog.registry):
        errors.append(
            FieldError(
                "input.catalog.registry",
                f"must be a registry or repository prefix, got {catalog.registry!r}",
            )
        )
    if not _TAG.match(catalog.tag):
        errors.append(FieldError("input.catalog.tag", f"must be an image tag, got {catalog.tag!r}"))
    for connector, image in catalog.images.items():
        path = f"input.catalog.images.{connector}"
        if connector not in CONNECTORS:
            errors.append(FieldError(path, f"unknown connector; known: {_known()}"))
        elif not _IMAGE.match(image):
            errors.append(FieldError(path, f"must be an image reference, got {image!r}"))
    return errors


def _pull_secret_errors(at: str, secrets: Sequence[LocalObjectReference]) -> list[FieldError]:
    return [
        FieldError(f"{at}[{index}].name", f"must be a Secret name, got {secret.name!r}")
        for index, secret in enumerate(secrets)
        if len(secret.name) > 253 or not _DNS_SUBDOMAIN.match(secret.name)
    ]


def shorthand_errors(found: StateProxyShorthand) -> list[FieldError]:
    """What the shorthand's backend needs and allows, at ``spec.stateProxy.*``."""
    at, backend = "spec.stateProxy", found.backend
    errors: list[FieldError] = []
    allowed = short.CONSISTENCIES[backend]
    if found.consistency is not None and found.consistency not in allowed:
        errors.append(
            FieldError(
                f"{at}.consistency",
                f"backend {backend} offers only {' or '.join(allowed)}, got {found.consistency!r}",
            )
        )
    env_names = {var.name for var in found.env}
    for field, value, names in (
        ("bucket", found.bucket, short.BUCKET_ENV),
        ("url", found.url, short.URL_ENV),
    ):
        variable = names.get(backend)
        if value is not None and variable is None:
            errors.append(FieldError(f"{at}.{field}", f"backend {backend} takes no {field}"))
        elif value is not None and not value.strip():
            errors.append(FieldError(f"{at}.{field}", "must not be empty"))
        elif (
            short.REQUIRED[backend] == field
            and value is None
            and variable not in env_names
            and not found.env_from
        ):
            errors.append(
                FieldError(
                    f"{at}.{field}",
                    f"required for backend {backend} (it sets {variable}), unless env or "
                    f"envFrom provides {variable}",
                )
            )
    derived = {
        names[backend]: field
        for field, value, names in (
            ("bucket", found.bucket, short.BUCKET_ENV),
            ("url", found.url, short.URL_ENV),
        )
        if value is not None and backend in names
    }
    for index, var in enumerate(found.env):
        if var.name in derived:
            errors.append(
                FieldError(
                    f"{at}.env[{index}].name",
                    f"{var.name} is set by {at}.{derived[var.name]}; set it in one place",
                )
            )
    errors.extend(_env_errors(f"{at}.env", found.env))
    errors.extend(_env_from_errors(f"{at}.envFrom", found.env_from))
    return errors


def validate_actor(
    identity: Identity,
    spec: ActorSpec,
    settings: FunctionInput,
    *,
    composes_deployment: bool,
    shorthand: bool = False,
) -> list[FieldError]:
    """Rules of ``spec`` beyond its types; ``composes_deployment`` when no earlier step did.

    ``shorthand`` when ``spec.state_proxy`` is the one entry the shorthand stands for.
    """
    errors: list[FieldError] = []
    if composes_deployment:
        errors.extend(_deployment_source_errors(identity, spec, settings))
    elif spec.handler is not None and not _HANDLER.match(spec.handler):
        errors.append(FieldError("spec.handler", _bad_handler(spec.handler)))
    if spec.actor is not None and (len(spec.actor) > 63 or not _LABEL_VALUE.match(spec.actor)):
        errors.append(
            FieldError(
                "spec.actor",
                f"must be a valid label value of at most 63 characters, got {spec.actor!r}",
            )
        )
    if spec.replicas is not None and spec.replicas < 0:
        errors.append(FieldError("spec.replicas", f"must be 0 or more, got {spec.replicas}"))
    account = spec.service_account_name
    if account is not None and (len(account) > 253 or not _DNS_SUBDOMAIN.match(account)):
        errors.append(
            FieldError("spec.serviceAccountName", f"must be a ServiceAccount name, got {account!r}")
        )
    errors.extend(_pull_secret_errors("spec.imagePullSecrets", spec.image_pull_secrets))
    needs_prefix = any(
        all(var.name != PREFIX_ENV for var in entry.connector.env) for entry in spec.state_proxy
    )
    if needs_prefix and not identity.actor:
        errors.append(
            FieldError(
                "spec.actor",
                f"required (or metadata.name): {PREFIX_ENV} defaults to <namespace>/<actor>/",
            )
        )
    seen_names: dict[str, int] = {}
    seen_paths: dict[str, int] = {}
    seen_ports: dict[int, int] = {}
    for index, entry in enumerate(spec.state_proxy):
        # The shorthand's one mount is reported at the field the user wrote.
        at = "spec.stateProxy" if shorthand else f"spec.stateProxy[{index}]"
        errors.extend(_name_errors(at, entry, seen_names, settings))
        errors.extend(_path_errors(at, entry, seen_paths, spec.state_proxy, settings))
        errors.extend(_connector_errors(f"{at}.connector", entry, settings))
        errors.extend(_metrics_port_errors(f"{at}.connector", index, entry, seen_ports))
        seen_names.setdefault(entry.name, index)
        seen_paths.setdefault(entry.mount.path, index)
    return errors


def _metrics_port_errors(
    at: str, index: int, entry: StateProxyEntry, seen: dict[int, int]
) -> list[FieldError]:
    """A metrics port is the sidecar's only TCP listener: a valid, unprivileged port, one per sidecar."""
    port = entry.connector.metrics_port
    if port is None:
        return []
    path = f"{at}.metricsPort"
    if not MIN_METRICS_PORT <= port <= 65535:
        return [FieldError(path, f"must be a port from {MIN_METRICS_PORT} to 65535, got {port}")]
    if port in seen:
        return [FieldError(path, f"port {port} is already used by spec.stateProxy[{seen[port]}]")]
    seen[port] = index
    if any(var.name == METRICS_PORT_ENV for var in entry.connector.env):
        return [FieldError(f"{at}.env", f"set metricsPort instead of {METRICS_PORT_ENV} in env")]
    return []


def _deployment_source_errors(
    identity: Identity, spec: ActorSpec, settings: FunctionInput
) -> list[FieldError]:
    errors: list[FieldError] = []
    why = (
        f"no earlier pipeline step composed the Deployment "
        f"{settings.deployment_resource_name!r}, so the function composes it from the spec"
    )
    if not identity.xr_name:
        errors.append(FieldError("metadata.name", f"required: {why}"))
    if not spec.image or not _IMAGE.match(spec.image):
        errors.append(FieldError("spec.image", f"required: {why}"))
    if spec.handler is None:
        errors.append(FieldError("spec.handler", f"required: {why}"))
    elif not _HANDLER.match(spec.handler):
        errors.append(FieldError("spec.handler", _bad_handler(spec.handler)))
    if (
        not spec.actor
        and identity.actor
        and (len(identity.actor) > 63 or not _LABEL_VALUE.match(identity.actor))
    ):
        errors.append(
            FieldError(
                "metadata.name",
                f"must be a valid label value of at most 63 characters, got {identity.actor!r}",
            )
        )
    return errors


def _name_errors(
    at: str, entry: StateProxyEntry, seen: dict[str, int], settings: FunctionInput
) -> list[FieldError]:
    path, name = f"{at}.name", entry.name
    if not _DNS_LABEL.match(name):
        return [FieldError(path, _not_label(name))]
    if len(name) > MAX_NAME:
        return [
            FieldError(
                path,
                f"must be at most {MAX_NAME} characters (it names the sidecar asya-state-<name> "
                f"and its volumes), got {len(name)}",
            )
        ]
    if name in seen:
        return [FieldError(path, f"{name!r} is already used by spec.stateProxy[{seen[name]}]")]
    socket = posixpath.join(settings.socket_dir, f"{name}.sock")
    if len(socket.encode()) > MAX_SOCKET_PATH:
        return [
            FieldError(
                path,
                f"the socket path {socket} is longer than {MAX_SOCKET_PATH} bytes; "
                "shorten the name or input.socketDir",
            )
        ]
    return []


def _path_errors(
    at: str,
    entry: StateProxyEntry,
    seen: dict[str, int],
    entries: Sequence[StateProxyEntry],
    settings: FunctionInput,
) -> list[FieldError]:
    path, value = f"{at}.mount.path", entry.mount.path
    problem = _path_problem(value)
    if problem:
        return [FieldError(path, problem)]
    if value in seen:
        return [FieldError(path, f"{value!r} is already mounted by spec.stateProxy[{seen[value]}]")]
    for other_index, other in enumerate(entries):
        if other is not entry and _inside(value, other.mount.path):
            return [
                FieldError(
                    path,
                    f"{value!r} is inside {other.mount.path!r} (spec.stateProxy[{other_index}]); "
                    "state mounts must not nest",
                )
            ]
    for owner, directory in (
        ("the state socket directory (input.socketDir)", settings.socket_dir),
        (
            "the runtime library directory (input.runtimeLibrary.mountPath)",
            settings.runtime_library.mount_path,
        ),
    ):
        if value == directory or _inside(value, directory) or _inside(directory, value):
            return [FieldError(path, f"{value!r} overlaps {owner} {directory!r}")]
    return []


def _path_problem(value: str) -> str | None:
    if not value.startswith("/"):
        return f"must be an absolute path like /state/cache, got {value!r}"
    if ":" in value or ";" in value:
        return f"must not contain ':' or ';' (they separate ASYA_STATE_PROXY_MOUNTS entries), got {value!r}"
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        return f"must not contain whitespace or control characters, got {value!r}"
    if value == "/":
        return "cannot be the filesystem root"
    normal = posixpath.normpath(value)
    if normal != value or value.startswith("//"):
        return f"must be normalized (no trailing '/', '//', '.' or '..'), like {normal!r}"
    return None


def _inside(path: str, parent: str) -> bool:
    return path.startswith(parent.rstrip("/") + "/")


def _connector_errors(at: str, entry: StateProxyEntry, settings: FunctionInput) -> list[FieldError]:
    connector = entry.connector
    errors: list[FieldError] = []
    if connector.image is None and connector.type is None:
        errors.append(FieldError(at, "set connector.type (a connector name) or connector.image"))
    elif connector.image is not None and connector.type is not None:
        errors.append(
            FieldError(
                at,
                "set only one of connector.type and connector.image; the type names the catalog image",
            )
        )
    elif connector.type is not None and connector.type not in CONNECTORS:
        errors.append(
            FieldError(f"{at}.type", f"unknown connector {connector.type!r}; known: {_known()}")
        )
    elif connector.image is not None and not _IMAGE.match(connector.image):
        errors.append(
            FieldError(
                f"{at}.image", f"must be an image reference without spaces, got {connector.image!r}"
            )
        )
    errors.extend(_env_errors(f"{at}.env", connector.env))
    errors.extend(_env_from_errors(f"{at}.envFrom", connector.env_from))
    volume = connector.volume
    if volume is not None:
        problem = _path_problem(volume.mount_path)
        if problem is None and volume.mount_path in ("/tmp", settings.socket_dir):
            problem = f"{volume.mount_path!r} is already mounted in the sidecar"
        if problem:
            errors.append(FieldError(f"{at}.volume.mountPath", problem))
        if not _DNS_SUBDOMAIN.match(volume.claim_name):
            errors.append(
                FieldError(
                    f"{at}.volume.claimName",
                    f"must be a PersistentVolumeClaim name, got {volume.claim_name!r}",
                )
            )
    return errors


def _env_errors(at: str, env: Sequence[EnvVar]) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: dict[str, int] = {}
    for index, var in enumerate(env):
        item = f"{at}[{index}]"
        if not _ENV_NAME.match(var.name):
            errors.append(
                FieldError(
                    f"{item}.name", f"must be an environment variable name, got {var.name!r}"
                )
            )
        elif var.name == RESERVED_ENV:
            errors.append(
                FieldError(
                    f"{item}.name",
                    f"{RESERVED_ENV} is set by the function (the mount's socket); remove it",
                )
            )
        elif var.name in seen:
            errors.append(
                FieldError(f"{item}.name", f"{var.name!r} is already set by {at}[{seen[var.name]}]")
            )
        seen.setdefault(var.name, index)
        if var.value is not None and var.value_from is not None:
            errors.append(FieldError(item, "set value or valueFrom, not both"))
        source = var.value_from
        if source is not None:
            chosen = [
                s for s in (source.secret_key_ref, source.config_map_key_ref, source.field_ref) if s
            ]
            if len(chosen) != 1:
                errors.append(
                    FieldError(
                        f"{item}.valueFrom",
                        "set exactly one of secretKeyRef, configMapKeyRef or fieldRef",
                    )
                )
    return errors


def _env_from_errors(at: str, sources: Sequence[EnvFromSource]) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, source in enumerate(sources):
        if (source.secret_ref is None) == (source.config_map_ref is None):
            errors.append(
                FieldError(f"{at}[{index}]", "set exactly one of secretRef or configMapRef")
            )
        if source.prefix is not None and source.prefix and not _ENV_NAME.match(source.prefix):
            errors.append(
                FieldError(
                    f"{at}[{index}].prefix",
                    f"must be an environment variable prefix, got {source.prefix!r}",
                )
            )
    return errors


def _not_label(value: str) -> str:
    return (
        "must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending "
        f"with a letter or digit), got {value!r}"
    )


def _bad_handler(value: str) -> str:
    return f"must be dotted module.function or module.Class.method, got {value!r}"


def _known() -> str:
    return ", ".join(sorted(CONNECTORS))
