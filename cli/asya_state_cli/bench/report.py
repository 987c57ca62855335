"""The benchmark's verdicts and output: targets, the printed tables, the JSON file.

Owns: checking the performance targets against what was measured (they
are reported, never asserted by tests), the plain-text tables (one per
workload family, columns aligned), and writing ``--json``.

Must not: measure anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .results import MiB, PopulatedRow, Results, Target

REDIS_RATIO = 2.5
KEEPALIVE_SPEEDUP = 3.0
PASSTHROUGH_MBPS = 400.0
RSS_GROWTH = 64 * MiB
THREAD_SCALING = 1.5
# Populated backends: p50 at the largest crowd over p50 at the smallest.
POPULATED_GROWTH = 1.3
POPULATED_FLAT = ("redis", "nats", "fs")
# exists of a missing file against a stat of a stored one through the same
# path: one backend request, what upstream's exists costs.
MISSING_VS_ONE_REQUEST = 1.1
# A missing file's exists, os.stat and open against the model of upstream's
# sidecar in the same run: no slower.
MISSING_VS_UPSTREAM = 1.0


def evaluate(results: Results) -> list[Target]:
    """Every target the measured backends let us check."""
    targets: list[Target] = []
    for row in results.latency:
        op = row.workload.split()[0]
        if row.backend == "redis" and op in ("read", "write") and row.ratio_p50 is not None:
            targets.append(
                Target(
                    "redis",
                    f"small {op} p50 vs {row.direct_label}",
                    f"<= {REDIS_RATIO}x",
                    f"{row.ratio_p50:.2f}x",
                    row.ratio_p50 <= REDIS_RATIO,
                )
            )
    for keep in results.keepalive:
        if keep.workload.startswith("read") and keep.speedup_p50 is not None:
            targets.append(
                Target(
                    keep.backend,
                    "pooled small read p50 vs one connection per request",
                    f">= {KEEPALIVE_SPEEDUP}x faster",
                    f"{keep.speedup_p50:.2f}x",
                    keep.speedup_p50 >= KEEPALIVE_SPEEDUP,
                )
            )
    for flow in results.throughput:
        if flow.backend != "fs" or not flow.workload.startswith("passthrough"):
            continue
        targets.append(
            Target(
                "fs",
                f"{flow.workload} {_size(flow.size)}",
                f">= {PASSTHROUGH_MBPS:.0f} MB/s",
                f"{flow.proxy_mbps:.0f} MB/s",
                flow.proxy_mbps >= PASSTHROUGH_MBPS,
            )
        )
        growth = max(flow.handler_rss_growth, flow.connector_rss_growth)
        targets.append(
            Target(
                "fs",
                f"{flow.workload} {_size(flow.size)} peak RSS growth (handler, connector)",
                f"< {RSS_GROWTH // MiB} MiB each",
                f"{_mib(flow.handler_rss_growth)}, {_mib(flow.connector_rss_growth)} MiB",
                growth < RSS_GROWTH,
            )
        )
    targets += _populated_targets(results)
    by_threads = {(row.backend, row.threads): row for row in results.concurrency}
    for backend in ("fs", "memory"):
        one, eight = by_threads.get((backend, 1)), by_threads.get((backend, 8))
        if one is None or eight is None:
            continue
        scaling = eight.proxy_ops_per_s / one.proxy_ops_per_s
        targets.append(
            Target(
                backend,
                "8 threads of small reads vs 1 thread (ops/s)",
                f">= {THREAD_SCALING}x",
                f"{scaling:.2f}x",
                scaling >= THREAD_SCALING,
            )
        )
    return targets


def _populated_targets(results: Results) -> list[Target]:
    targets: list[Target] = []
    series: dict[tuple[str, str], list[PopulatedRow]] = {}
    for row in results.populated:
        series.setdefault((row.backend, row.workload), []).append(row)
    for (backend, workload), rows in series.items():
        rows = sorted(rows, key=lambda row: row.foreign)
        if backend in POPULATED_FLAT and len(rows) > 1:
            first, last = rows[0], rows[-1]
            growth = last.proxy.p50_us / first.proxy.p50_us
            targets.append(
                Target(
                    backend,
                    f"{workload} p50, {last.foreign:,} vs {first.foreign:,} foreign keys",
                    f"<= {POPULATED_GROWTH}x",
                    f"{growth:.2f}x",
                    growth <= POPULATED_GROWTH,
                )
            )
    for row in results.populated:
        if row.upstream is None:
            continue
        versus = row.proxy.p50_us / row.upstream.p50_us
        targets.append(
            Target(
                row.backend,
                f"{row.workload} p50 vs upstream's pattern, {row.foreign:,} foreign keys",
                f"<= {MISSING_VS_UPSTREAM}x",
                f"{versus:.2f}x",
                versus <= MISSING_VS_UPSTREAM,
            )
        )
    stats = {(r.backend, r.foreign): r for r in results.populated if r.workload == "stat"}
    for row in results.populated:
        present = stats.get((row.backend, row.foreign))
        if row.workload != "exists (missing)" or present is None:
            continue
        ratio = row.proxy.p50_us / present.proxy.p50_us
        targets.append(
            Target(
                row.backend,
                f"exists (missing) p50 vs a one-request stat, {row.foreign:,} foreign keys",
                f"<= {MISSING_VS_ONE_REQUEST}x",
                f"{ratio:.2f}x",
                ratio <= MISSING_VS_ONE_REQUEST,
            )
        )
    return targets


# -- formatting ---------------------------------------------------------------


def _size(size: int) -> str:
    if size % (1024 * MiB) == 0:
        return f"{size // (1024 * MiB)} GiB"
    return f"{size / MiB:g} MiB"


def _mib(value: int) -> str:
    return f"{value / MiB:.1f}"


def _us(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A titled plain-text table: numeric columns right-aligned, text columns left-aligned."""
    columns = list(zip(headers, *rows))
    widths = [max(len(cell) for cell in column) for column in columns]
    numeric = [all(_is_number(cell) for cell in column[1:]) for column in columns]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(cells, widths, numeric)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([title, line(headers), rule, *(line(row) for row in rows)])


def _is_number(cell: str) -> bool:
    return cell[:1].isdigit() or cell == "n/a"


def render(results: Results) -> str:
    sections: list[str] = []
    if results.latency:
        sections.append(
            table(
                "Latency per operation (µs); ratio = proxy / direct",
                ["backend", "workload", "n", "proxy p50", "proxy p99", "direct", "direct p50",
                 "direct p99", "ratio p50", "ratio p99"],
                [
                    [row.backend, row.workload, str(row.proxy.n), _us(row.proxy.p50_us),
                     _us(row.proxy.p99_us), row.direct_label, _us(row.direct.p50_us),
                     _us(row.direct.p99_us), _x(row.ratio_p50), _x(row.ratio_p99)]
                    for row in results.latency
                ],
            )
        )  # fmt: skip
    if results.throughput:
        sections.append(
            table(
                "Large objects (MB/s = 10^6 bytes/s); RSS = peak growth during the transfer",
                ["backend", "workload", "size", "proxy MB/s", "direct", "direct MB/s",
                 "proxy/direct", "handler RSS MiB", "connector RSS MiB"],
                [
                    [row.backend, row.workload, _size(row.size), f"{row.proxy_mbps:.0f}",
                     row.direct_label, f"{row.direct_mbps:.0f}", _x(row.ratio),
                     _mib(row.handler_rss_growth), _mib(row.connector_rss_growth)]
                    for row in results.throughput
                ],
            )
        )  # fmt: skip
    if results.concurrency:
        ones = {row.backend: row for row in results.concurrency if row.threads == 1}
        sections.append(
            table(
                "Concurrent small reads from threads of one handler process (ops/s)",
                ["backend", "threads", "proxy ops/s", "vs 1 thread", "direct", "direct ops/s"],
                [
                    [row.backend, str(row.threads), f"{row.proxy_ops_per_s:.0f}",
                     _x(row.proxy_ops_per_s / ones[row.backend].proxy_ops_per_s
                        if row.backend in ones else None),
                     row.direct_label, f"{row.direct_ops_per_s:.0f}"]
                    for row in results.concurrency
                ],
            )
        )  # fmt: skip
    if results.keepalive:
        sections.append(
            table(
                "Pooled keep-alive connections vs one new connection per request (µs)",
                ["backend", "workload", "pooled p50", "pooled p99", "no keep-alive p50",
                 "no keep-alive p99", "pooling speed-up p50"],
                [
                    [row.backend, row.workload, _us(row.pooled.p50_us), _us(row.pooled.p99_us),
                     _us(row.fresh.p50_us), _us(row.fresh.p99_us), _x(row.speedup_p50)]
                    for row in results.keepalive
                ],
            )
        )  # fmt: skip
    if results.contention:
        sections.append(
            table(
                "Contention: examples/cas-counter, every replica increments one key",
                ["backend", "connector", "replicas", "messages", "seconds", "conflicts",
                 "failed", "final count"],
                [
                    [row.backend, row.connector, str(row.replicas), str(row.messages),
                     f"{row.seconds:.2f}", str(row.conflicts), str(row.failed),
                     "n/a" if row.final_count is None else str(row.final_count)]
                    for row in results.contention
                ],
            )
        )  # fmt: skip
    if results.populated:
        smallest: dict[tuple[str, str], float] = {}
        for row in sorted(results.populated, key=lambda row: row.foreign):
            smallest.setdefault((row.backend, row.workload), row.proxy.p50_us)
        sections.append(
            table(
                "Populated backends: other mounts' objects in the same store (µs); "
                "growth = proxy p50 / proxy p50 at the smallest size; upstream = the model "
                "of upstream's sidecar (one HEAD or GET, a new connection per operation)",
                ["backend", "foreign keys", "workload", "n", "proxy p50", "proxy p99",
                 "growth", "direct", "direct p50", "direct p99", "upstream p50",
                 "upstream p99"],
                [
                    [row.backend, f"{row.foreign:,}", row.workload, str(row.proxy.n),
                     _us(row.proxy.p50_us), _us(row.proxy.p99_us),
                     _x(row.proxy.p50_us / smallest[(row.backend, row.workload)]),
                     row.direct_label, _us(row.direct.p50_us), _us(row.direct.p99_us),
                     _us(row.upstream.p50_us) if row.upstream else "",
                     _us(row.upstream.p99_us) if row.upstream else ""]
                    for row in results.populated
                ],
            )
        )  # fmt: skip
    if results.skipped:
        sections.append(
            table(
                "Not measured",
                ["backend", "workload", "why"],
                [[row.backend, row.workload, row.reason] for row in results.skipped],
            )
        )
    if results.targets:
        sections.append(
            table(
                "Targets",
                ["backend", "target", "goal", "measured", "result"],
                [
                    [t.backend, t.name, t.goal, t.measured, "met" if t.passed else "MISSED"]
                    for t in results.targets
                ],
            )
        )
    machine = results.machine
    sections.append(
        f"Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB RAM, Python {machine['python']}, {machine['platform']}\n"
        f"Command: {results.command}"
    )
    return "\n\n".join(sections) + "\n"


def write_json(results: Results, path: Path) -> None:
    path.write_text(json.dumps(results.to_json(), indent=2) + "\n")
