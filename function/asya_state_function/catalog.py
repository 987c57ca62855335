"""The connector catalogue as the function knows it: names, traits, images.

Owns: every connector name a ``connector.type`` may use, what each name
promises (backend, consistency, streaming), the catalog image for a name
(``<registry>/asya-state-proxy-<name>:<tag>``) and recognising a connector
from an image reference.

Must not: import ``asya_state_connectors`` (the function image does not ship
it); a test keeps these names equal to the connector registry's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib import metadata

IMAGE_PREFIX = "asya-state-proxy-"
DEFAULT_REGISTRY = "asya"


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


def image_for(name: str, registry: str, tag: str, overrides: dict[str, str]) -> str:
    """The image of connector ``name``: an override, else ``<registry>/asya-state-proxy-<name>:<tag>``."""
    if name in overrides:
        return overrides[name]
    return f"{registry.rstrip('/')}/{IMAGE_PREFIX}{name}:{tag}"


def connector_for_image(image: str) -> str | None:
    """The connector an image runs, when its repository is named ``asya-state-proxy-<name>``."""
    repository = image.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    last = last.split(":", 1)[0]
    if not last.startswith(IMAGE_PREFIX):
        return None
    name = last[len(IMAGE_PREFIX) :]
    return name if name in CONNECTORS else None
