"""The Virtual Actors shorthand, ``stateProxy: {backend: s3, bucket: ..., consistency: lww}``.

Owns: what the shorthand means as one ordinary ``stateProxy[]`` entry: the
mount (``state`` at ``/state``), the connector a backend and a consistency
choose, and the env the bucket and the url become. The key prefix is not
here: both forms get the same ``STATE_PREFIX`` default from the sidecar
builder.

Must not: validate (``validation.shorthand_errors`` does, with field paths)
or build Kubernetes objects.
"""

from __future__ import annotations

from .models import Connector, EnvVar, Mount, StateProxyEntry, StateProxyShorthand

MOUNT_NAME = "state"
MOUNT_PATH = "/state"
DEFAULT_CONSISTENCY = "cas"

# The env var each field becomes, per backend; a backend missing from a map has no such field.
BUCKET_ENV = {"s3": "STATE_BUCKET", "gcs": "STATE_BUCKET", "nats-kv": "NATS_KV_BUCKET"}
URL_ENV = {"s3": "AWS_ENDPOINT_URL", "redis": "REDIS_URL", "nats-kv": "NATS_URL"}
# The field a backend cannot work without (unless env or envFrom provides its variable).
REQUIRED = {"s3": "bucket", "gcs": "bucket", "redis": "url", "nats-kv": "url"}
CONSISTENCIES = {
    "s3": ("lww", "cas"),
    "gcs": ("lww", "cas"),
    "redis": ("cas",),
    "nats-kv": ("cas",),
}


def consistency(shorthand: StateProxyShorthand) -> str:
    return shorthand.consistency or DEFAULT_CONSISTENCY


def connector_type(shorthand: StateProxyShorthand) -> str:
    """The catalog connector: streaming writes to S3 without a condition use s3-passthrough."""
    chosen = consistency(shorthand)
    if shorthand.backend == "s3" and chosen == "lww" and shorthand.write_mode == "passthrough":
        return "s3-passthrough"
    return f"{shorthand.backend}-buffered-{chosen}"


def derived_env(shorthand: StateProxyShorthand) -> list[EnvVar]:
    """The variables the bucket and the url set, in that order."""
    env: list[EnvVar] = []
    for value, names in ((shorthand.bucket, BUCKET_ENV), (shorthand.url, URL_ENV)):
        name = names.get(shorthand.backend)
        if value is not None and name is not None:
            env.append(EnvVar(name=name, value=value))
    return env


def entry(shorthand: StateProxyShorthand) -> StateProxyEntry:
    """The one entry the shorthand stands for."""
    return StateProxyEntry(
        name=MOUNT_NAME,
        mount=Mount(path=MOUNT_PATH),
        write_mode=shorthand.write_mode,
        connector=Connector(
            type=connector_type(shorthand),
            env=[*derived_env(shorthand), *shorthand.env],
            env_from=list(shorthand.env_from),
            resources=shorthand.resources,
            spill_size_limit=shorthand.spill_size_limit,
        ),
    )
