"""What one benchmark run measured: typed rows per workload family, and their JSON form.

Owns: the row types (latency, throughput, concurrency, keep-alive,
contention, populated backends, skipped workloads), the ratios derived from them, and
``Results.to_json``. Sizes are bytes, rates MB/s (10^6 bytes per second),
latencies microseconds.

Must not: measure or format tables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .stats import Latency, ratio

MB = 1_000_000
MiB = 1024 * 1024


@dataclass(frozen=True)
class LatencyRow:
    backend: str
    workload: str
    proxy: Latency
    direct: Latency
    direct_label: str

    @property
    def ratio_p50(self) -> float | None:
        return ratio(self.proxy.p50_us, self.direct.p50_us)

    @property
    def ratio_p99(self) -> float | None:
        return ratio(self.proxy.p99_us, self.direct.p99_us)


@dataclass(frozen=True)
class PopulatedRow:
    """One operation on a backend that also holds ``foreign`` objects of other mounts."""

    backend: str
    foreign: int
    workload: str
    proxy: Latency
    direct: Latency
    direct_label: str
    # The model of upstream's sidecar, where it was measured (a missing file on S3, GCS).
    upstream: Latency | None = None

    @property
    def ratio_p50(self) -> float | None:
        return ratio(self.proxy.p50_us, self.direct.p50_us)


@dataclass(frozen=True)
class ThroughputRow:
    backend: str
    workload: str
    size: int
    proxy_seconds: float
    direct_seconds: float
    direct_label: str
    handler_rss_growth: int
    connector_rss_growth: int

    @property
    def proxy_mbps(self) -> float:
        return self.size / self.proxy_seconds / MB

    @property
    def direct_mbps(self) -> float:
        return self.size / self.direct_seconds / MB

    @property
    def ratio(self) -> float | None:
        """Proxy over direct throughput (1.0 is as fast as the direct client)."""
        return ratio(self.proxy_mbps, self.direct_mbps)


@dataclass(frozen=True)
class ConcurrencyRow:
    backend: str
    threads: int
    ops: int
    proxy_seconds: float
    direct_seconds: float
    direct_label: str

    @property
    def proxy_ops_per_s(self) -> float:
        return self.ops / self.proxy_seconds

    @property
    def direct_ops_per_s(self) -> float:
        return self.ops / self.direct_seconds


@dataclass(frozen=True)
class KeepAliveRow:
    backend: str
    workload: str
    pooled: Latency
    fresh: Latency

    @property
    def speedup_p50(self) -> float | None:
        """How many times faster the pooled client is than one connection per request."""
        return ratio(self.fresh.p50_us, self.pooled.p50_us)


@dataclass(frozen=True)
class ContentionRow:
    backend: str
    connector: str
    replicas: int
    messages: int
    seconds: float
    conflicts: int
    failed: int
    final_count: int | None


@dataclass(frozen=True)
class Skipped:
    backend: str
    workload: str
    reason: str


@dataclass(frozen=True)
class Target:
    backend: str
    name: str
    goal: str
    measured: str
    passed: bool


@dataclass
class Results:
    command: str
    quick: bool
    machine: dict[str, Any]
    latency: list[LatencyRow] = field(default_factory=list)
    throughput: list[ThroughputRow] = field(default_factory=list)
    concurrency: list[ConcurrencyRow] = field(default_factory=list)
    keepalive: list[KeepAliveRow] = field(default_factory=list)
    contention: list[ContentionRow] = field(default_factory=list)
    populated: list[PopulatedRow] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "quick": self.quick,
            "machine": self.machine,
            "latency": [
                {**asdict(row), "ratio_p50": row.ratio_p50, "ratio_p99": row.ratio_p99}
                for row in self.latency
            ],
            "throughput": [
                {
                    **asdict(row),
                    "proxy_mbps": row.proxy_mbps,
                    "direct_mbps": row.direct_mbps,
                    "ratio": row.ratio,
                }
                for row in self.throughput
            ],
            "concurrency": [
                {
                    **asdict(row),
                    "proxy_ops_per_s": row.proxy_ops_per_s,
                    "direct_ops_per_s": row.direct_ops_per_s,
                }
                for row in self.concurrency
            ],
            "keepalive": [
                {**asdict(row), "speedup_p50": row.speedup_p50} for row in self.keepalive
            ],
            "contention": [asdict(row) for row in self.contention],
            "populated": [{**asdict(row), "ratio_p50": row.ratio_p50} for row in self.populated],
            "skipped": [asdict(row) for row in self.skipped],
            "targets": [asdict(row) for row in self.targets],
        }
