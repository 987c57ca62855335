"""The connector catalogue as the function knows it: names, traits, images.

Owns: every connector name a ``connector.type`` may use, what each name
promises (backend, consistency), the catalog image for a name
(``<registry>/asya-state-proxy-<name>:<tag>``) and for the runtime library,
recognising a connector from an image reference, and telling whether an
image comes from the configured catalog (only those speak this project's
protocol and carry the probe's Python).

Must not: import ``asya_state_connectors`` (the function image does not ship
it); a test keeps these names equal to the connector registry's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib import metadata

IMAGE_PREFIX = "asya-state-proxy-"
# Docker Hub, spelled out: Crossplane v2 and CRI-O refuse references without a registry host.
DEFAULT_REGISTRY = "docker.io/asya"
# The image that carries the runtime hook library for the init container to copy.
RUNTIME_IMAGE = "runtime"


class Consistency(Enum):
    LWW = "last-writer-wins"
    CAS = "compare-and-swap"


@dataclass(frozen=True)
class ConnectorTraits:
    backend: str
    consistency: Consistency
    # Holds state only for the life of the connector process.
    ephemeral: bool = False


CONNECTORS: dict[str, ConnectorTraits] = {
    "s3-passthrough": ConnectorTraits("s3", Consistency.LWW),
    "s3-buffered-lww": ConnectorTraits("s3", Consistency.LWW),
    "s3-buffered-cas": ConnectorTraits("s3", Consistency.CAS),
    "gcs-buffered-lww": ConnectorTraits("gcs", Consistency.LWW),
    "gcs-buffered-cas": ConnectorTraits("gcs", Consistency.CAS),
    "redis-buffered-cas": ConnectorTraits("redis", Consistency.CAS),
    "nats-kv-buffered-cas": ConnectorTraits("nats-kv", Consistency.CAS),
    "fs-buffered-lww": ConnectorTraits("fs", Consistency.LWW),
    "fs-buffered-cas": ConnectorTraits("fs", Consistency.CAS),
    "memory": ConnectorTraits("memory", Consistency.CAS, ephemeral=True),
}


@cache
def default_tag() -> str:
    """The release the function belongs to: connector images are built with the same tag."""
    try:
        return metadata.version("asya-state-proxy")
    except metadata.PackageNotFoundError:
        return "latest"


def image_for(name: str, registry: str, tag: str, overrides: Mapping[str, str]) -> str:
    """The image of ``name``: an override, else ``<registry>/asya-state-proxy-<name>:<tag>``."""
    if name in overrides:
        return overrides[name]
    return f"{registry.rstrip('/')}/{IMAGE_PREFIX}{name}:{tag}"


def repository(image: str) -> str:
    """``image`` without its tag and digest: ``host/path/name``."""
    without_digest = image.split("@", 1)[0]
    head, _, last = without_digest.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}" if head else name


def connector_for_image(image: str) -> str | None:
    """The connector an image runs, when its repository is named ``asya-state-proxy-<name>``."""
    last = repository(image).rsplit("/", 1)[-1]
    if not last.startswith(IMAGE_PREFIX):
        return None
    name = last[len(IMAGE_PREFIX) :]
    return name if name in CONNECTORS else None


def catalog_connector(image: str, registry: str, overrides: Mapping[str, str]) -> str | None:
    """The connector ``image`` runs when it comes from this catalog, at any tag; else None.

    An image is the catalog's when its repository is ``<registry>/asya-state-proxy-<name>``
    or the repository of ``overrides[name]``. Upstream images with the same
    last path segment but another registry are not: they speak another protocol.
    """
    wanted = repository(image)
    for overridden, override in overrides.items():
        if repository(override) == wanted:
            return overridden
    name = connector_for_image(image)
    if name is None:
        return None
    return name if wanted == f"{registry.rstrip('/')}/{IMAGE_PREFIX}{name}" else None
