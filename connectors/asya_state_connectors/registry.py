"""Connector names -> implementations, imported lazily.

Owns: the catalogue of connector names users put in YAML and on the command
line. Each backend module is imported only when its connector is asked for,
so an image that installs one backend's client never needs the others.

Must not: import backend modules at import time.
"""

from __future__ import annotations

import importlib

from .errors import ConfigError
from .interface import Connector

# name -> "module:ClassName" under asya_state_connectors.backends
CONNECTORS: dict[str, str] = {
    "memory": "memory:MemoryConnector",
    "fs-buffered-lww": "fs.backend:FsBufferedLww",
    "fs-buffered-cas": "fs.backend:FsBufferedCas",
    "redis-buffered-cas": "redis.backend:RedisBufferedCas",
    "nats-kv-buffered-cas": "nats_kv.backend:NatsKvBufferedCas",
    "s3-passthrough": "s3.backend:S3Passthrough",
    "s3-buffered-lww": "s3.backend:S3BufferedLww",
    "s3-buffered-cas": "s3.backend:S3BufferedCas",
    "gcs-buffered-lww": "gcs.backend:GcsBufferedLww",
    "gcs-buffered-cas": "gcs.backend:GcsBufferedCas",
}

# The pip extra that carries each backend's client library.
EXTRAS: dict[str, str] = {
    "memory": "connector",
    "fs": "fs",
    "redis": "redis",
    "nats_kv": "nats",
    "s3": "s3",
    "gcs": "gcs",
}


def connector_class(name: str) -> type[Connector]:
    """Resolve a connector name; ConfigError names the unknown name and the known ones."""
    try:
        target = CONNECTORS[name]
    except KeyError:
        known = ", ".join(sorted(CONNECTORS))
        raise ConfigError(f"unknown connector {name!r}; known connectors: {known}") from None
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(f"asya_state_connectors.backends.{module_name}")
    except ImportError as exc:
        package = module_name.split(".")[0]
        extra = EXTRAS.get(package, package)
        raise ConfigError(
            f"connector {name!r} needs the '{extra}' extra: pip install 'asya-state-proxy[{extra}]'"
            f" ({exc})"
        ) from exc
    cls: type[Connector] = getattr(module, class_name)
    return cls
