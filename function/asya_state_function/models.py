"""Typed models of the function's two inputs: ``AsyncActor.spec`` and the function ``Input``.

Owns: the shape of ``spec.stateProxy`` (the list of mounts, and the
one-mount shorthand ``{backend, bucket, consistency}``; names and types
exactly as users write them in YAML, camelCase on the wire) and of the
``Input`` object a Composition passes to the function, with every default
of that input.

Must not: check cross-field rules (uniqueness, nesting, known connector
names: see ``validation``) or build Kubernetes objects (see ``builders``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .catalog import DEFAULT_REGISTRY, default_tag

WriteMode = Literal["buffered", "passthrough"]

# Kubernetes resource.Quantity: a signed decimal with an optional exponent or suffix.
_NUMBER = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
_QUANTITY = re.compile(rf"^{_NUMBER}([KMGTPE]i|[numkMGTPE]|[eE]{_NUMBER})?$")


def _quantity(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be a quantity like 100m, 64Mi or 1, got {value!r}")
    if isinstance(value, str) and not _QUANTITY.match(value):
        raise ValueError(f"must be a quantity like 100m, 64Mi or 1, got {value!r}")
    return value


Quantity = Annotated[int | str, BeforeValidator(_quantity)]

DEFAULT_SOCKET_DIR = "/var/run/asya/state"
DEFAULT_LIBRARY_DIR = "/opt/asya/state-runtime"
DEFAULT_RUNTIME_CONTAINER = "asya-runtime"
DEFAULT_DEPLOYMENT_RESOURCE = "deployment"
DEFAULT_CONNECTOR_RESOURCES: dict[str, dict[str, int | str]] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}
# Buffered writes spill to the sidecar's /tmp above 4 MiB; this caps that
# emptyDir so one runaway upload cannot fill the node's disk.
DEFAULT_SPILL_SIZE_LIMIT = "1Gi"
DEFAULT_LIVENESS_PERIOD = 30
DEFAULT_STARTUP_TIMEOUT = 120


class _Wire(BaseModel):
    """camelCase on the wire, no coercion between types, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        frozen=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as Kubernetes expects it: camelCase keys, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True)


class KeySelector(_Wire):
    name: str
    key: str
    optional: bool | None = None


class FieldSelector(_Wire):
    field_path: str
    api_version: str | None = None


class EnvVarSource(_Wire):
    secret_key_ref: KeySelector | None = None
    config_map_key_ref: KeySelector | None = None
    field_ref: FieldSelector | None = None


class EnvVar(_Wire):
    name: str
    value: str | None = None
    value_from: EnvVarSource | None = None


class SourceRef(_Wire):
    name: str
    optional: bool | None = None


class EnvFromSource(_Wire):
    prefix: str | None = None
    secret_ref: SourceRef | None = None
    config_map_ref: SourceRef | None = None


class Resources(_Wire):
    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class ConnectorVolume(_Wire):
    """A PersistentVolumeClaim mounted into the sidecar (the fs connectors' directory)."""

    claim_name: str
    mount_path: str
    sub_path: str | None = None
    read_only: bool | None = None


class Connector(_Wire):
    image: str | None = None
    type: str | None = None
    env: list[EnvVar] = Field(default_factory=list)
    env_from: list[EnvFromSource] = Field(default_factory=list)
    resources: Resources | None = None
    volume: ConnectorVolume | None = None
    metrics_port: int | None = None
    spill_size_limit: Quantity | None = None


class Mount(_Wire):
    path: str


class StateProxyEntry(_Wire):
    name: str
    mount: Mount
    write_mode: WriteMode | None = None
    connector: Connector


Backend = Literal["s3", "gcs", "redis", "nats-kv"]
ShorthandConsistency = Literal["lww", "cas"]


class StateProxyShorthand(_Wire):
    """``stateProxy: {backend: s3, bucket: ..., consistency: lww}``: one mount at ``/state``."""

    backend: Backend
    bucket: str | None = None
    url: str | None = None
    consistency: ShorthandConsistency | None = None
    write_mode: WriteMode | None = None
    env: list[EnvVar] = Field(default_factory=list)
    env_from: list[EnvFromSource] = Field(default_factory=list)
    resources: Resources | None = None
    spill_size_limit: Quantity | None = None


class LocalObjectReference(_Wire):
    name: str


class ActorSpec(_Wire):
    """The fields of ``AsyncActor.spec`` the function reads; other fields pass through.

    ``state_proxy`` is the list form; ``validation.parse_spec`` reads the
    shorthand separately and ``shorthand.entry`` turns it into one entry.
    """

    model_config = ConfigDict(extra="ignore")

    image: str | None = None
    handler: str | None = None
    replicas: int | None = None
    actor: str | None = None
    service_account_name: str | None = None
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list)
    state_proxy: list[StateProxyEntry] = Field(default_factory=list)


class RuntimeLibrary(_Wire):
    # Empty means the catalog's <registry>/asya-state-proxy-runtime:<tag>.
    image: str | None = None
    mount_path: str = DEFAULT_LIBRARY_DIR


class Probes(_Wire):
    """How the connector sidecars are checked; a backend outage is not a pod failure by default."""

    # Seconds the postStart hook waits for the socket before the container restarts.
    startup_timeout_seconds: int = DEFAULT_STARTUP_TIMEOUT
    # 0 turns the liveness probe off.
    liveness_period_seconds: int = DEFAULT_LIVENESS_PERIOD
    # "backend" marks a pod unready while its backend does not answer.
    readiness: Literal["none", "backend"] = "none"


class Catalog(_Wire):
    registry: str = DEFAULT_REGISTRY
    tag: str = Field(default_factory=default_tag)
    images: dict[str, str] = Field(default_factory=dict)


class Defaults(_Wire):
    write_mode: WriteMode = "buffered"
    connector_resources: Resources = Resources.model_validate(DEFAULT_CONNECTOR_RESOURCES)
    spill_size_limit: Quantity = DEFAULT_SPILL_SIZE_LIMIT


class FunctionInput(_Wire):
    """``stateproxy.fn.asya.sh/v1beta1`` ``Input``: every field optional."""

    api_version: str | None = None
    kind: str | None = None
    metadata: dict[str, Any] | None = None
    deployment_resource_name: str = DEFAULT_DEPLOYMENT_RESOURCE
    runtime_container_name: str = DEFAULT_RUNTIME_CONTAINER
    socket_dir: str = DEFAULT_SOCKET_DIR
    runtime_library: RuntimeLibrary = RuntimeLibrary()
    catalog: Catalog = Field(default_factory=Catalog)
    defaults: Defaults = Defaults()
    probes: Probes = Probes()
    # Pull secrets for the connector and runtime-library images, added to every actor pod.
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list)
