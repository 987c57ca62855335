"""The workloads of one backend, proxy and direct interleaved in the same run.

Owns: the sizes and counts (``Plan``), the order of the workloads, and the
interleaving: every workload alternates rounds through the full path (file
API -> runtime -> connector -> backend) and through the backend's own
client, swapping which goes first each round, so drift on a shared
machine lands on both sides. Peak RSS of the handler and the connector is
sampled around every large proxy transfer.

Must not: start servers or format results.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .pod import BUFFERED, NO_KEEPALIVE, PASSTHROUGH, BenchPod, mount_store
from .results import (
    ConcurrencyRow,
    KeepAliveRow,
    LatencyRow,
    MiB,
    PopulatedRow,
    Results,
    Skipped,
    ThroughputRow,
)
from .rigs import Rig
from .rss import PeakRss
from .stats import Latency
from .upstream import UpstreamSidecar

SMALL = 1024
SMALL_OPS = ("write", "read", "stat", "exists")
# The populated-backend workloads: (name in the report, Store operation).
POPULATED_OPS = (
    ("exists (present)", "exists"),
    ("exists (missing)", "missing"),
    ("stat", "stat"),
    ("listdir", "listdir"),
)
# A missing file three ways where a model of upstream's sidecar runs (S3,
# GCS): through the proxy, the backend's own client, and upstream's pattern.
MISSING_OPS = (
    ("missing: exists", "missing"),
    ("missing: os.stat", "stat_missing"),
    ("missing: open", "open_missing"),
)


@dataclass(frozen=True)
class Plan:
    small_ops: int = 2000
    list_keys: int = 500
    list_repeats: int = 40
    concurrency_ops: int = 2000
    threads: tuple[int, ...] = (1, 8, 32)
    large_bytes: int = 1024 * MiB
    rounds: int = 10
    replicas: int = 8
    contention_messages: int = 200
    # Populated-backend mode: sizes of the crowd of other mounts' objects
    # (empty: the ordinary workloads instead), samples per operation and size,
    # and the entries of the directory listed.
    populated: tuple[int, ...] = ()
    populated_ops: int = 400
    populated_listings: int = 40
    populated_entries: int = 100
    # One-way latency added between the connector (and every other client)
    # and the S3 or GCS emulator in the populated mode: round trips then
    # cost what they cost against a real store.
    latency: float = 0.0

    @classmethod
    def make(
        cls,
        *,
        quick: bool,
        scale: float = 1.0,
        populated: tuple[int, ...] = (),
        latency: float = 0.0,
    ) -> Plan:
        """The full plan, or ``--quick`` (256 MiB large objects); ``scale`` shrinks every count.

        ``populated``: measure only the populated-backend workload at these sizes.
        """
        plan = cls(large_bytes=256 * MiB) if quick else cls()
        plan = replace(plan, populated=tuple(sorted(set(populated))), latency=latency)
        if scale == 1.0:
            return plan

        def scaled(value: int, floor: int) -> int:
            return max(floor, round(value * scale))

        return replace(
            plan,
            small_ops=scaled(plan.small_ops, plan.rounds * 2),
            list_keys=scaled(plan.list_keys, 5),
            list_repeats=scaled(plan.list_repeats, plan.rounds),
            concurrency_ops=scaled(plan.concurrency_ops, max(plan.threads) * 2),
            large_bytes=scaled(plan.large_bytes, MiB),
            contention_messages=scaled(plan.contention_messages, plan.replicas),
            populated_ops=scaled(plan.populated_ops, plan.rounds * 2),
            populated_listings=scaled(plan.populated_listings, plan.rounds),
            populated_entries=scaled(plan.populated_entries, 5),
        )


# Reports progress (the command prints it to stderr).
Say = Callable[[str], None]


class BackendSuite:
    """Runs every workload of one backend through one BenchPod."""

    def __init__(self, rig: Rig, pod: BenchPod, plan: Plan, say: Say) -> None:
        self.rig = rig
        self.pod = pod
        self.plan = plan
        self.say = say
        self.proxy = mount_store(BUFFERED)
        self.direct = rig.direct

    def run(self, results: Results) -> None:
        if self.plan.populated:
            self.populated(results)
            return
        for store in (self.proxy, self.direct, mount_store(PASSTHROUGH), mount_store(NO_KEEPALIVE)):
            self._call(store, "prepare", dirs=["small", "list", "large"])
        results.latency += self.small()
        results.latency.append(self.listdir())
        results.concurrency += self.concurrency()
        results.keepalive += self.keepalive()
        large, skipped = self.large()
        results.throughput += large
        results.skipped += skipped

    # -- plumbing ---------------------------------------------------------

    def _call(self, store: dict[str, str], task: str, **fields: Any) -> dict[str, Any]:
        return self.pod.call({"task": task, "store": store, **fields})

    def _interleaved(
        self, stores: tuple[dict[str, str], ...], op: str, keys: list[str]
    ) -> tuple[list[int], ...]:
        """Nanosecond samples of ``op`` over ``keys`` per store, rotating which goes first each round."""
        samples: tuple[list[int], ...] = tuple([] for _ in stores)
        rounds = self.plan.rounds
        for number in range(rounds):
            part = keys[number::rounds]
            order = [(number + i) % len(stores) for i in range(len(stores))]
            for side in order:
                reply = self._call(stores[side], "timed", op=op, keys=part, size=SMALL)
                samples[side].extend(reply["ns"])
        return samples

    def _small_keys(self) -> list[str]:
        return [f"small/k{i:05d}" for i in range(self.plan.small_ops)]

    # -- workloads --------------------------------------------------------

    def small(self) -> list[LatencyRow]:
        rows = []
        keys = self._small_keys()
        for op in SMALL_OPS:  # write first: the other operations use what it stored
            self.say(f"{self.rig.name}: small {op} x{len(keys)}")
            proxy, direct = self._interleaved((self.proxy, self.direct), op, keys)
            rows.append(self._latency(f"{op} 1 KiB", proxy, direct))
        return rows

    def listdir(self) -> LatencyRow:
        count = self.plan.list_keys
        self.say(f"{self.rig.name}: listdir of {count} keys x{self.plan.list_repeats}")
        names = [f"list/k{i:05d}" for i in range(count)]
        for store in (self.proxy, self.direct):
            self._call(store, "timed", op="write", keys=names, size=SMALL)
        proxy, direct = self._interleaved(
            (self.proxy, self.direct), "listdir", ["list"] * self.plan.list_repeats
        )
        return self._latency(f"listdir {count} keys", proxy, direct)

    def _latency(self, workload: str, proxy: list[int], direct: list[int]) -> LatencyRow:
        return LatencyRow(
            self.rig.name, workload, Latency.of(proxy), Latency.of(direct), self.rig.direct_label
        )

    def populated(self, results: Results) -> None:
        """exists, stat and listdir while the store fills up with other mounts' objects.

        The crowd grows from one size to the next between measurements (the
        same objects stay), in the same Redis database, NATS bucket, bucket
        or state directory as both the proxied and the direct store.
        """
        rig, plan = self.rig, self.plan
        if rig.populate is None:
            reason = "each memory connector has its own store: nothing else can be in it"
            results.skipped.append(Skipped(rig.name, "populated backend", reason))
            return
        entries = [f"pop/dir/k{i:05d}" for i in range(plan.populated_entries)]
        for store in (self.proxy, self.direct):
            self._call(store, "prepare", dirs=["pop", "pop/dir"])
            self._call(store, "timed", op="write", keys=[*entries, "pop/present"], size=SMALL)
        keys = {
            "exists": ["pop/present"] * plan.populated_ops,
            "missing": [f"pop/none{i:05d}" for i in range(plan.populated_ops)],
            "stat": ["pop/present"] * plan.populated_ops,
            "listdir": ["pop/dir"] * plan.populated_listings,
        }
        with contextlib.ExitStack() as stack:
            upstream = None
            if rig.upstream is not None:
                socket_path = self.pod.workdir / "upstream.sock"
                stack.enter_context(UpstreamSidecar(rig.upstream, socket_path, rig.connector_env))
                upstream = {"kind": "upstream", "socket": str(socket_path)}
            self._populated_sizes(results, entries, keys, upstream)

    def _populated_sizes(
        self,
        results: Results,
        entries: list[str],
        keys: dict[str, list[str]],
        upstream: dict[str, str] | None,
    ) -> None:
        rig, plan = self.rig, self.plan
        assert rig.populate is not None
        stored = 0
        for size in plan.populated:
            if rig.max_foreign is not None and size > rig.max_foreign:
                reason = f"more than {rig.max_foreign:,} is impractical here (see the README)"
                results.skipped.append(Skipped(rig.name, f"populated {size:,}", reason))
                continue
            self.say(f"{rig.name}: adding other mounts' objects, {stored:,} -> {size:,}")
            rig.populate(stored, size)
            stored = size
            if upstream is not None:
                self._missing_three_ways(results, size, upstream)
            for workload, op in POPULATED_OPS:
                self.say(f"{rig.name}: {size:,} foreign, {workload} x{len(keys[op])}")
                proxy, direct = self._interleaved((self.proxy, self.direct), op, keys[op])
                name = f"listdir {len(entries)} entries" if op == "listdir" else workload
                results.populated.append(
                    PopulatedRow(
                        rig.name,
                        size,
                        name,
                        Latency.of(proxy),
                        Latency.of(direct),
                        rig.direct_label,
                    )
                )

    def _missing_three_ways(self, results: Results, size: int, upstream: dict[str, str]) -> None:
        """A missing file's exists, os.stat and open: proxy, own client, upstream's pattern."""
        keys = [f"pop/absent{i:05d}" for i in range(self.plan.populated_ops)]
        for workload, op in MISSING_OPS:
            self.say(f"{self.rig.name}: {size:,} foreign, {workload} x{len(keys)}, three ways")
            proxy, direct, model = self._interleaved((self.proxy, self.direct, upstream), op, keys)
            results.populated.append(
                PopulatedRow(
                    self.rig.name,
                    size,
                    workload,
                    Latency.of(proxy),
                    Latency.of(direct),
                    self.rig.direct_label,
                    upstream=Latency.of(model),
                )
            )

    def concurrency(self) -> list[ConcurrencyRow]:
        keys = self._small_keys()
        ops = self.plan.concurrency_ops
        work = [keys[i % len(keys)] for i in range(ops)]
        rows = []
        for threads in self.plan.threads:
            self.say(f"{self.rig.name}: {threads} threads of small reads x{ops}")
            seconds = {}
            for side in ("proxy", "direct") if threads % 2 else ("direct", "proxy"):
                store = self.proxy if side == "proxy" else self.direct
                reply = self._call(
                    store, "concurrent", op="read", keys=work, size=SMALL, threads=threads
                )
                seconds[side] = reply["seconds"]
            rows.append(
                ConcurrencyRow(
                    self.rig.name,
                    threads,
                    ops,
                    seconds["proxy"],
                    seconds["direct"],
                    self.rig.direct_label,
                )
            )
        return rows

    def keepalive(self) -> list[KeepAliveRow]:
        keys = self._small_keys()
        fresh_store = mount_store(NO_KEEPALIVE)
        rows = []
        for op in ("write", "read"):
            self.say(f"{self.rig.name}: small {op} pooled vs one connection per request")
            pooled, fresh = self._interleaved((self.proxy, fresh_store), op, keys)
            rows.append(
                KeepAliveRow(self.rig.name, f"{op} 1 KiB", Latency.of(pooled), Latency.of(fresh))
            )
        return rows

    def large(self) -> tuple[list[ThroughputRow], list[Skipped]]:
        """Write, read and remove one large object per path, so dirty pages never pile up.

        The buffered and passthrough paths are timed on either side of the
        direct client, and each object is removed before the next path
        writes, so kernel writeback of earlier transfers does not land on a
        later one.
        """
        size = self.plan.large_bytes
        label = _size_label(size)
        if self.rig.no_large is not None:
            return [], [Skipped(self.rig.name, f"large {label}", self.rig.no_large)]
        if self.rig.max_object is not None and size > self.rig.max_object:
            reason = f"objects are limited to {_size_label(self.rig.max_object)} on this backend"
            return [], [Skipped(self.rig.name, f"large {label}", reason)]
        key = "large/object.bin"
        self.say(f"{self.rig.name}: large {label} write and read, buffered / direct / passthrough")
        buffered = self._proxy_large(BUFFERED, key, size)
        direct = [self._call(self.direct, f"large_{kind}", key=key, size=size)["seconds"]
                  for kind in ("write", "read")]  # fmt: skip
        self._call(self.direct, "remove", key=key)
        passthrough = self._proxy_large(PASSTHROUGH, key, size)
        return [
            ThroughputRow(
                self.rig.name,
                f"{mode} {kind}",
                size,
                seconds,
                direct_seconds,
                self.rig.direct_label,
                handler_growth,
                connector_growth,
            )
            for mode, measured in (("buffered", buffered), ("passthrough", passthrough))
            for kind, direct_seconds, (seconds, handler_growth, connector_growth) in zip(
                ("write", "read"), direct, measured
            )
        ], []

    def _proxy_large(self, mount: str, key: str, size: int) -> list[tuple[float, int, int]]:
        """(seconds, handler RSS growth, connector RSS growth) of a write, then a read."""
        store = mount_store(mount)
        pids = {"handler": self.pod.handler_pid, "connector": self.pod.connector_pid(mount)}
        measured = []
        for kind in ("write", "read"):
            with PeakRss(pids) as rss:
                reply = self._call(store, f"large_{kind}", key=key, size=size)
            measured.append((reply["seconds"], rss.growth("handler"), rss.growth("connector")))
        self._call(store, "remove", key=key)
        return measured


def _size_label(size: int) -> str:
    if size >= 1024 * MiB and size % (1024 * MiB) == 0:
        return f"{size // (1024 * MiB)} GiB"
    if size >= MiB:
        return f"{size / MiB:g} MiB"
    return f"{size / 1024:g} KiB"
