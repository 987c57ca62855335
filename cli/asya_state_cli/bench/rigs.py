"""Each benchmarked backend: its loopback servers, connector settings and direct client.

Owns: for fs, memory, redis (and redis-cluster, redis-cluster-wait: a 3+3
Redis Cluster, the second with ``REDIS_WAIT_REPLICAS=1``), nats (and
nats-cluster: three clustered nats-servers, buckets of three replicas), s3 and
gcs, which connectors serve the
workloads (buffered, passthrough, compare-and-swap for the contention
run), the connector environment, the settings of the backend's own client
for the direct baseline, the largest object the backend holds, how other
mounts' objects are added beside both (``crowd``) and how many are
practical here, which model of upstream's sidecar can run beside it, the
emulator endpoint a shaped link may stand in front of, and
starting/stopping whatever server the backend needs on 127.0.0.1.

Must not: run workloads, or reach any server that it did not start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from asya_state_connectors.errors import ConfigError
from asya_state_connectors.registry import connector_class

from . import crowd

MiB = 1024 * 1024
# Other mounts' objects the emulated object stores take in practical time
# here: moto and fake-gcs-server store about 150 objects a second on two
# cores, and moto walks every object of a bucket for each listing.
EMULATOR_FOREIGN = 10_000
# Files are cheap to count but not to create: 100,000 files beside the
# mounts already show that a directory's cost is its own entries.
FS_FOREIGN = 100_000

# Adds objects ``start`` to ``stop`` of the foreign sequence beside both stores.
Populate = Callable[[int, int], None]


@dataclass(frozen=True)
class Rig:
    """A backend with its servers running."""

    name: str
    connector: str
    passthrough_connector: str
    # None when replicas cannot share the store (each memory connector has its own).
    cas_connector: str | None
    connector_env: dict[str, str]
    direct: dict[str, str]
    direct_label: str
    # Objects larger than this cannot be stored; None means no limit.
    max_object: int | None = None
    no_large: str | None = None  # why the large workload does not apply at all
    # How to add other mounts' objects beside the measured ones; None: impossible.
    populate: Populate | None = None
    max_foreign: int | None = None  # the most that is practical on this backend
    # The environment variable holding the emulator's URL, which a shaped
    # link can stand in front of (S3, GCS); None for the others.
    endpoint_env: str | None = None
    # Which model of upstream's sidecar (``bench.upstream``) runs beside it.
    upstream: str | None = None


def behind_link(rig: Rig, url: str) -> Rig:
    """``rig`` with its connectors and direct client reaching the emulator through ``url``.

    The crowd is still stored straight to the emulator: filling it is set-up, not measured.
    """
    assert rig.endpoint_env is not None, f"{rig.name} has no endpoint to shape"
    return replace(
        rig,
        connector_env={**rig.connector_env, rig.endpoint_env: url},
        direct={**rig.direct, "endpoint": url},
    )


RigFactory = Callable[[Path], contextlib.AbstractContextManager[Rig]]


@contextlib.contextmanager
def _fs(workdir: Path) -> Iterator[Rig]:
    yield Rig(
        name="fs",
        connector="fs-buffered-cas",
        passthrough_connector="fs-buffered-cas",
        cas_connector="fs-buffered-cas",
        connector_env={"STATE_DIR": str(workdir / "fs-state")},
        direct={"kind": "files", "root": str(workdir / "fs-direct")},
        direct_label="os",
        populate=_both(
            lambda a, b: crowd.crowd_directory(workdir / "fs-state", a, b),
            lambda a, b: crowd.crowd_directory(workdir / "fs-direct", a, b),
        ),
        max_foreign=FS_FOREIGN,
    )


def _both(first: Populate, second: Populate) -> Populate:
    def populate(start: int, stop: int) -> None:
        first(start, stop)
        second(start, stop)

    return populate


@contextlib.contextmanager
def _memory(workdir: Path) -> Iterator[Rig]:
    yield Rig(
        name="memory",
        connector="memory",
        passthrough_connector="memory",
        cas_connector=None,
        connector_env={},
        # No client of its own: the floor is plain file I/O on a local directory.
        direct={"kind": "files", "root": str(workdir / "memory-direct")},
        direct_label="os",
        no_large="the memory connector keeps every object in its own RAM",
    )


@contextlib.contextmanager
def _redis(workdir: Path) -> Iterator[Rig]:
    from ..servers.redis import RedisServer

    limit = 512 * MiB  # the Redis string limit
    with RedisServer() as server:
        yield Rig(
            name="redis",
            connector="redis-buffered-cas",
            passthrough_connector="redis-buffered-cas",
            cas_connector="redis-buffered-cas",
            connector_env={"REDIS_URL": server.url, "REDIS_MAX_VALUE_BYTES": str(limit)},
            direct={"kind": "redis", "url": server.url, "prefix": "direct/"},
            direct_label="redis-py",
            max_object=limit,
            # One database holds the connector's keys and the direct client's.
            populate=lambda a, b: crowd.crowd_redis(server.url, a, b),
        )


def _redis_cluster(wait_replicas: int) -> RigFactory:
    """A 3-primary, 3-replica Redis Cluster; ``wait_replicas`` > 0 sets REDIS_WAIT_REPLICAS."""

    @contextlib.contextmanager
    def rig(workdir: Path) -> Iterator[Rig]:
        from ..servers.redis import RedisCluster

        limit = 512 * MiB
        env = {"REDIS_URL": "", "REDIS_MAX_VALUE_BYTES": str(limit)}
        if wait_replicas:
            env["REDIS_WAIT_REPLICAS"] = str(wait_replicas)
        with RedisCluster() as cluster:
            env["REDIS_URL"] = cluster.url
            yield Rig(
                name="redis-cluster" + ("-wait" if wait_replicas else ""),
                connector="redis-buffered-cas",
                passthrough_connector="redis-buffered-cas",
                cas_connector="redis-buffered-cas",
                connector_env=env,
                # redis-py's cluster client: routes by slot and follows the cluster itself.
                direct={"kind": "redis-cluster", "url": cluster.url, "prefix": "direct/"},
                direct_label="redis-py cluster",
                max_object=limit,
            )

    return rig


@contextlib.contextmanager
def _nats(workdir: Path) -> Iterator[Rig]:
    from ..servers.nats import NatsServer

    with NatsServer() as server:
        yield Rig(
            name="nats",
            connector="nats-kv-buffered-cas",
            passthrough_connector="nats-kv-buffered-cas",
            cas_connector="nats-kv-buffered-cas",
            connector_env={"NATS_URL": server.url, "NATS_KV_BUCKET": "asya-bench"},
            direct={"kind": "nats", "url": server.url, "bucket": "asya-bench-direct"},
            direct_label="nats-py",
            populate=_both(
                lambda a, b: crowd.crowd_nats(server.url, "asya-bench", a, b),
                lambda a, b: crowd.crowd_nats(server.url, "asya-bench-direct", a, b),
            ),
            no_large=f"NATS KV values are bounded by max_payload ({server.max_payload // MiB} MiB)",
        )


@contextlib.contextmanager
def _nats_cluster(workdir: Path) -> Iterator[Rig]:
    from ..servers.nats import NatsCluster

    with NatsCluster() as cluster:
        url = cluster.url
        yield Rig(
            name="nats-cluster",
            connector="nats-kv-buffered-cas",
            passthrough_connector="nats-kv-buffered-cas",
            cas_connector="nats-kv-buffered-cas",
            connector_env={
                "NATS_URL": url,
                "NATS_KV_BUCKET": "asya-bench",
                "NATS_KV_REPLICAS": "3",
            },
            direct={"kind": "nats", "url": url, "bucket": "asya-bench-direct", "replicas": "3"},
            direct_label="nats-py",
            populate=_both(
                lambda a, b: crowd.crowd_nats(url, "asya-bench", a, b, replicas=3),
                lambda a, b: crowd.crowd_nats(url, "asya-bench-direct", a, b, replicas=3),
            ),
            no_large=f"NATS KV values are bounded by max_payload ({cluster.nodes[0].max_payload // MiB} MiB)",
        )


@contextlib.contextmanager
def _s3(workdir: Path) -> Iterator[Rig]:
    from ..servers.moto import MotoServer

    with MotoServer() as server:
        for bucket in ("asya-bench", "asya-bench-direct"):
            server.create_bucket(bucket)
        env: dict[str, str] = server.connector_env("asya-bench")
        yield Rig(
            name="s3",
            connector="s3-buffered-cas",
            passthrough_connector="s3-passthrough",
            cas_connector="s3-buffered-cas",
            connector_env=env,
            direct={
                "kind": "s3",
                "endpoint": env["AWS_ENDPOINT_URL"],
                "region": env["AWS_REGION"],
                "bucket": "asya-bench-direct",
                "access_key": env["AWS_ACCESS_KEY_ID"],
                "secret_key": env["AWS_SECRET_ACCESS_KEY"],
            },
            direct_label="boto3",
            populate=_both(
                lambda a, b: crowd.crowd_s3(env, "asya-bench", a, b),
                lambda a, b: crowd.crowd_s3(env, "asya-bench-direct", a, b),
            ),
            max_foreign=EMULATOR_FOREIGN,
            endpoint_env="AWS_ENDPOINT_URL",
            upstream="s3",
        )


@contextlib.contextmanager
def _gcs(workdir: Path) -> Iterator[Rig]:
    from ..servers.fake_gcs import FakeGcsServer

    with FakeGcsServer() as server:
        for bucket in ("asya-bench", "asya-bench-direct"):
            server.create_bucket(bucket)
        env: dict[str, str] = server.connector_env("asya-bench")
        yield Rig(
            name="gcs",
            connector="gcs-buffered-cas",
            passthrough_connector="gcs-buffered-lww",
            cas_connector="gcs-buffered-cas",
            connector_env=env,
            direct={
                "kind": "gcs",
                "endpoint": env["STORAGE_EMULATOR_HOST"],
                "project": env["GCS_PROJECT"],
                "bucket": "asya-bench-direct",
            },
            direct_label="google-cloud-storage",
            populate=_both(
                lambda a, b: crowd.crowd_gcs(env, "asya-bench", a, b),
                lambda a, b: crowd.crowd_gcs(env, "asya-bench-direct", a, b),
            ),
            max_foreign=EMULATOR_FOREIGN,
            endpoint_env="STORAGE_EMULATOR_HOST",
            upstream="gcs",
        )


RIGS: dict[str, RigFactory] = {
    "fs": _fs,
    "memory": _memory,
    "redis": _redis,
    "redis-cluster": _redis_cluster(0),
    "redis-cluster-wait": _redis_cluster(1),
    "nats": _nats,
    "nats-cluster": _nats_cluster,
    "s3": _s3,
    "gcs": _gcs,
}
_CONNECTORS = {
    "fs": ("fs-buffered-cas",),
    "memory": ("memory",),
    "redis": ("redis-buffered-cas",),
    "redis-cluster": ("redis-buffered-cas",),
    "redis-cluster-wait": ("redis-buffered-cas",),
    "nats": ("nats-kv-buffered-cas",),
    "nats-cluster": ("nats-kv-buffered-cas",),
    "s3": ("s3-buffered-cas", "s3-passthrough"),
    "gcs": ("gcs-buffered-cas", "gcs-buffered-lww"),
}


def unavailable(name: str) -> str | None:
    """Why backend ``name`` cannot be benchmarked in this installation, or None."""
    for connector in _CONNECTORS[name]:
        try:
            connector_class(connector)
        except ConfigError as exc:
            return str(exc)
    return None
